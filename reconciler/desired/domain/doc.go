// Package domain converts one defaulted KubeVirt VirtualMachineInstance spec
// into a libvirt domain (libvirt.org/go/libvirtxml) plus the host-side
// artifacts it refers to (container-disk overlays, empty disks, cloud-init
// seed images, config-disk images of ConfigMaps and Secrets, claims, host
// disks, virtiofs shared directories, a direct kernel boot's kernel and
// initrd). Secrets and ConfigMaps come in read (Input.Sources); a Secret's
// values stay in Artifact.SecretFiles, out of every JSON form.
//
// It owns the mapping from spec fields to domain elements and the support
// matrix of fields it maps, ignores (warning) or refuses (error); see Fields.
// The conversion is an ordered list of small configurators, one per element
// group, each filling only its own elements (KubeVirt's converter layout).
//
// Convert is pure: no I/O, no clock, no randomness. Host facts and directory
// layout come in through Context, so the same input always yields the same
// bytes and drift checks can compare against it. The package must not import
// runtime drivers (libvirt.org/go/libvirt, anything under runtime/) or do host
// I/O; only its tests talk to libvirt's in-process test driver.
package domain
