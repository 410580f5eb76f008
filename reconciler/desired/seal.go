package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// seal hashes what the guest will see (the domain without metadata, plus the
// host artifacts behind its disks), writes the ownership element with that
// hash into the domain and returns the final XML. It is the last step of
// every rendering, so the hash always matches the XML.
func seal(dom *libvirtxml.Domain, artifacts []domain.Artifact, hot []domain.HotplugDisk, owner Owner) (xml, hash string, err error) {
	dom.Metadata = nil
	live := map[string]bool{}
	for _, h := range hot {
		live[h.Volume] = true
	}
	body, err := hashedBody(dom, live)
	if err != nil {
		return "", "", err
	}
	var cold []domain.Artifact
	for _, a := range artifacts {
		if !live[a.Volume] {
			cold = append(cold, a)
		}
	}
	arts, err := json.Marshal(cold)
	if err != nil {
		return "", "", fmt.Errorf("hashing artifacts: %w", err)
	}
	sum := sha256.New()
	sum.Write([]byte(body))
	sum.Write(arts)
	owner.SpecHash = "sha256:" + hex.EncodeToString(sum.Sum(nil))[:32]
	meta, err := owner.Element()
	if err != nil {
		return "", "", err
	}
	dom.Metadata = meta
	xml, err = dom.Marshal()
	return xml, owner.SpecHash, err
}

// hashedBody is the domain as the hash sees it: without the controllers
// added for hotplug capacity, so domains defined before they existed keep
// their hash and are not restarted for them (a redefine adds them), and
// without the disks of live volumes, which change without a restart.
func hashedBody(dom *libvirtxml.Domain, live map[string]bool) (string, error) {
	if dom.Devices == nil {
		return dom.Marshal()
	}
	cp := *dom
	devs := *dom.Devices
	devs.Controllers = nil
	for _, c := range dom.Devices.Controllers {
		if !domain.IsHotplugController(c) {
			devs.Controllers = append(devs.Controllers, c)
		}
	}
	devs.Disks = nil
	for _, d := range dom.Devices.Disks {
		if d.Alias == nil || !live[strings.TrimPrefix(d.Alias.Name, "ua-")] {
			devs.Disks = append(devs.Disks, d)
		}
	}
	cp.Devices = &devs
	return cp.Marshal()
}
