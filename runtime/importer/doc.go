// Package importer fills one volume with a disk image, as CDI's importer and
// cloner pods do in a cluster: it downloads over http and https (extra CA
// bundle, basic auth, extra headers, checksum), pulls a containerDisk image
// from a registry (the single file under /disk/, over the OCI distribution
// API, with insecure registries), clones another volume (FICLONE reflink when
// the filesystem can, else a sparse copy), takes an upload stream, or makes a
// blank disk. Compression (gz, xz) and the image format (qcow2, raw, ISO) are
// detected by magic bytes, never by file name; gz and xz are decompressed
// while streaming, and qcow2 is converted to raw by qemu-img (Debian package
// qemu-utils) running under the cgroup v2 CPU and memory limits of the
// request where the host allows it.
//
// Nothing is ever visible under the target's name before it is complete: a
// file target is written as a hidden ".<name>.partial" beside it and renamed
// at the end, after the checksum, the size check and any preallocation
// succeeded. A block target (a loop device) is written in place; the caller
// must not hand it to a VM before Import returned nil. A new Import of the
// same target first removes whatever an interrupted one left behind, so a
// killed agent restarts its imports cleanly.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler or
// manifests: the storage reconciler declares the interface it needs and
// cmd/nodevirt adapts this package to it.
package importer
