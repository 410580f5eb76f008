// Package nodeconfig renders the host configuration one node should have from
// the source: MachineConfig objects, Butane files (*.bu, translated through
// nodeconfig/butane), HyperConverged.spec.permittedHostDevices and
// HostPathProvisioner backing directories. The result, a HostConfig, lists the
// files, systemd units, kernel arguments, VFIO intent, permitted PCI resources
// and SELinux label checks that apply to the node, each with the object and
// field it came from, merged in MachineConfig name order as the Machine Config
// Operator does. Ignition spec 2 configs (2.0–2.4) are translated to spec 3
// with the operator's own converter before anything else reads them.
//
// It is pure: apart from reading *.bu files from the source directory
// (LoadButane), it does no host I/O. Host facts (node name, CPU vendor) come
// in as a Node value. It must not import reconciler or runtime packages.
package nodeconfig
