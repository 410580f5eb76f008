// Package hotplug attaches DataVolume and PVC disks to running VMs and
// detaches them (virtctl's addvolume and removevolume), and remembers what
// it did in the state database so the VM stage never undoes it: a volume
// added without persist is gone at the VM's next boot, a persisted one is
// attached again at every boot until a commit of the source holds it.
package hotplug
