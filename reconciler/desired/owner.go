package desired

import (
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// MetadataNS is the XML namespace of nodevirt's ownership element inside a
// domain's <metadata>. A domain without it is not nodevirt's and is never touched.
const MetadataNS = "https://nodevirt.io/xmlns/domain/1"

// Owner is the ownership record nodevirt writes into each domain it defines.
type Owner struct {
	XMLName   xml.Name `xml:"https://nodevirt.io/xmlns/domain/1 owner"`
	Kind      string   `xml:"kind,attr"`
	Namespace string   `xml:"namespace,attr"`
	Name      string   `xml:"name,attr"`
	Revision  string   `xml:"revision,attr,omitempty"`
	SpecHash  string   `xml:"specHash,attr"`
}

// Element renders the owner as domain metadata.
func (o Owner) Element() (*libvirtxml.DomainMetadata, error) {
	b, err := xml.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("marshal owner: %w", err)
	}
	return &libvirtxml.DomainMetadata{XML: string(b)}, nil
}

// OwnerOf extracts nodevirt's owner element from a domain XML document; ok is
// false when the domain carries none (it is not ours).
func OwnerOf(domainXML string) (o Owner, ok bool) {
	d := xml.NewDecoder(strings.NewReader(domainXML))
	depth := 0
	inMeta := false
	for {
		tok, err := d.Token()
		if err != nil {
			return Owner{}, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "metadata" {
				inMeta = true
				continue
			}
			if inMeta && depth == 3 && t.Name.Space == MetadataNS && t.Name.Local == "owner" {
				if err := d.DecodeElement(&o, &t); err != nil {
					return Owner{}, false
				}
				return o, true
			}
		case xml.EndElement:
			if depth == 2 && inMeta {
				return Owner{}, false
			}
			depth--
		}
	}
}

// nodevirtUUIDNamespace seeds domain UUIDs. KubeVirt derives legacy firmware
// UUIDs from the VM name alone, which collides across namespaces; nodevirt
// hashes namespace/name so a redefinition keeps its UUID and no two VMs share one.
var nodevirtUUIDNamespace = [16]byte{0x3f, 0x5e, 0x0c, 0x6a, 0x8b, 0x1d, 0x4e, 0x27, 0x9a, 0x41, 0x7c, 0x02, 0xd5, 0x6e, 0x90, 0x13}

// StableUUID is a name-based (version 5, SHA-1) UUID of namespace/name.
func StableUUID(namespace, name string) string {
	h := sha1.New()
	h.Write(nodevirtUUIDNamespace[:])
	h.Write([]byte(namespace + "/" + name))
	s := h.Sum(nil)
	s[6] = (s[6] & 0x0f) | 0x50
	s[8] = (s[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
