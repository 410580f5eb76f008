// Package disks owns nodevirt's host-side disk artifacts: blank qcow2 and raw
// disks, cloud-init seed and config-disk ISOs, qcow2 overlays on
// containerDisk images, and the cache of images extracted from OCI layouts. Every file it creates or
// removes lies under the base directory given to New (image extraction writes
// only under the image cache directory); anything else is refused with
// ErrOutsideBase. Every Ensure method is idempotent and writes through a
// temporary file in the target directory plus a rename, so a crash never
// leaves a half-written artifact under its final name.
//
// qemu-img (Debian package qemu-utils) is required for qcow2 work;
// xorrisofs (package xorriso) for ISO images whose file names plain ISO
// 9660 cannot hold (a ConfigMap key such as Caddyfile), which it writes with
// Rock Ridge and Joliet names as KubeVirt does.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler: the
// reconciler declares the interfaces this package satisfies, so dependencies
// point one way only.
package disks
