package virt

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// systemSwtpmDir is where libvirt's system QEMU driver keeps each domain's
// swtpm state, in a directory named for the domain's UUID; libvirt 9 has no
// setting to move it.
const systemSwtpmDir = "/var/lib/libvirt/swtpm"

// swtpmDirFor is the swtpm state directory of the libvirtd behind uri when
// it shares this host's file system (qemu:///system), else "": nodevirt
// cannot reach another daemon's files.
func swtpmDirFor(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "qemu" || u.Host != "" || u.Path != "/system" {
		return ""
	}
	return systemSwtpmDir
}

// TPMStateDir is the directory holding the swtpm state of the domain with
// uuid, or "" when this connection's TPM state is out of reach.
func (d *Driver) TPMStateDir(uuid string) string {
	if d.swtpmDir == "" || uuid == "" {
		return ""
	}
	return filepath.Join(d.swtpmDir, uuid)
}

// resetTPM clears the state of a non-persistent emulated TPM before its
// domain boots. libvirt drops that state only when a transient domain stops
// or the domain is undefined; nodevirt's domains are persistent, so without
// this a TPM KubeVirt starts empty on every VM start (a new virt-launcher
// pod) would keep what the previous run wrote. persistent_state='yes' keeps
// it, as KubeVirt's persistent TPM does.
func (d *Driver) resetTPM(dom *libvirt.Domain) error {
	if d.swtpmDir == "" {
		return nil
	}
	x, err := dom.GetXMLDesc(libvirt.DOMAIN_XML_INACTIVE)
	if err != nil {
		// An opError, so a libvirtd lost mid-call reads as unavailable
		// (the start is tried again, not held back as the VM's failure).
		return wrapErr("read the definition of", "the domain", err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return fmt.Errorf("parse the definition: %w", err)
	}
	if def.Devices == nil {
		return nil
	}
	for _, tpm := range def.Devices.TPMs {
		if b := tpm.Backend; b != nil && b.Emulator != nil && b.Emulator.PersistentState != "yes" {
			dir := d.TPMStateDir(def.UUID)
			if dir == "" {
				return nil
			}
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("clear the state of its non-persistent TPM: %w", err)
			}
			return nil
		}
	}
	return nil
}
