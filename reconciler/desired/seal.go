package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// seal hashes what the guest will see (the domain without metadata, plus the
// host artifacts behind its disks), writes the ownership element with that
// hash into the domain and returns the final XML. It is the last step of
// every rendering, so the hash always matches the XML.
func seal(dom *libvirtxml.Domain, artifacts []domain.Artifact, owner Owner) (xml, hash string, err error) {
	dom.Metadata = nil
	body, err := hashedBody(dom)
	if err != nil {
		return "", "", err
	}
	arts, err := json.Marshal(artifacts)
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
// their hash and are not restarted for them (a redefine adds them).
func hashedBody(dom *libvirtxml.Domain) (string, error) {
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
	cp.Devices = &devs
	return cp.Marshal()
}
