// Package storage is nodevirt's local storage: it does on one host what the
// StorageClass provisioners, the PersistentVolume binder and CDI's DataVolume
// controller do in a cluster (SPEC S-1 … S-6, S-10, S-12, S-13, R-9).
//
// Desired turns a manifest set into the node's desired storage: classes with
// the seed's feature matrix (8.18.1), the hostpath provisioner's backing
// directory, static PersistentVolumes whose node affinity selects this node
// (local block PVs backed by loop devices among them), and claims — plain
// PersistentVolumeClaims, DataVolumes, and the DataVolumes of VirtualMachines'
// dataVolumeTemplates, owned by their VM. It validates what the manifests
// package leaves to the storage kinds and does no host I/O.
//
// Manager plans and applies: Plan observes the host (loop devices, files)
// through small interfaces this package declares (Importer, Loops, Files,
// KV), compares it with the desired state and the records it persisted, and
// returns a Plan whose actions carry field-level changes, reasons and a drift
// flag; Apply executes a plan. Imports run in the background with their phase
// and progress persisted, so Apply never blocks the agent's loop and a later
// Plan observes them; an import interrupted by a kill is restarted cleanly.
// Claim tells the VM side where a claim's disk is and whether it is ready.
//
// An upload DataVolume (spec.source.upload) has no source to fetch: once its
// volume is prepared it waits UploadReady until Upload hands it a stream
// (CDI's upload server does this in a cluster), which is imported like a
// download and recorded the same way, with the completed-import marker. One
// upload runs at a time; a failed one may be retried at once.
//
// The package must not import runtime drivers, libvirt or the source: the
// caller (cmd/nodevirt) wires runtime/importer and runtime/loop to the
// interfaces declared here.
package storage
