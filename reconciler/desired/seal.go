package desired

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// seal hashes what the guest will see (the domain without metadata, plus the
// host artifacts behind its disks), writes the ownership element with that
// hash into the domain and returns the final XML. It is the last step of
// every rendering, so the hash always matches the XML.
//
// Marshalling the domain is most of a rendering's cost, so the domain is
// marshalled once, with a placeholder owner: the hashed body is that text
// with the owner and the unhashed devices cut out (hashedText), and the
// final XML is that text with the real owner in the placeholder's place.
func seal(dom *libvirtxml.Domain, artifacts []domain.Artifact, hot []domain.HotplugDisk, owner Owner) (xml, hash string, err error) {
	live := map[string]bool{}
	for _, h := range hot {
		live[h.Volume] = true
	}
	ownerXML, err := marshalXML(owner) // SpecHash still empty
	if err != nil {
		return "", "", fmt.Errorf("marshal owner: %w", err)
	}
	placeholder := &libvirtxml.DomainMetadata{XML: ownerXML}
	dom.Metadata = placeholder
	full, err := marshalDomain(dom)
	if err != nil {
		return "", "", err
	}
	meta := "\n  <metadata>" + placeholder.XML + "</metadata>"
	at := strings.Index(full, meta)
	body, ok := "", false
	if at >= 0 {
		body, ok = hashedText(full[:at]+full[at+len(meta):], dom, live)
	}
	if !ok {
		// Not the text the cuts expect: marshal the body on its own.
		dom.Metadata = nil
		if body, err = hashedBody(dom, live); err != nil {
			return "", "", err
		}
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
	// The placeholder differs only in its empty specHash attribute; the
	// hash is hex, nothing to escape.
	const noHash = ` specHash=""`
	real := &libvirtxml.DomainMetadata{XML: strings.Replace(placeholder.XML, noHash, ` specHash="`+owner.SpecHash+`"`, 1)}
	if !strings.Contains(placeholder.XML, noHash) {
		if real, err = owner.Element(); err != nil {
			return "", "", err
		}
	}
	dom.Metadata = real
	if at < 0 {
		xml, err = dom.Marshal()
		return xml, owner.SpecHash, err
	}
	return full[:at] + "\n  <metadata>" + real.XML + "</metadata>" + full[at+len(meta):], owner.SpecHash, nil
}

// domainEncoder is an XML encoder that writes into its own buffer, kept for
// the next domain: xml.MarshalIndent (what libvirtxml's Marshal calls)
// allocates a new encoder, its buffered writer and a growing buffer for
// every domain, a fifth of what a rendering allocates.
type domainEncoder struct {
	buf bytes.Buffer
	enc *xml.Encoder
	// used: the encoder has written an element, so it starts the next one
	// on a new line, which marshalDomain drops.
	used bool
}

var domainEncoders = sync.Pool{New: func() any {
	e := &domainEncoder{}
	e.enc = xml.NewEncoder(&e.buf)
	e.enc.Indent("", "  ")
	return e
}}

// marshalDomain is dom.Marshal(): the same text, on a reused encoder.
func marshalDomain(dom *libvirtxml.Domain) (string, error) {
	return marshalXML(dom)
}

// marshalXML is xml.MarshalIndent(v, "", "  ") on a reused encoder; for an
// element without children (the owner) that is xml.Marshal(v).
func marshalXML(v any) (string, error) {
	e := domainEncoders.Get().(*domainEncoder)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return "", err // the encoder's state is unknown now: not kept
	}
	out := e.buf.Bytes()
	if e.used {
		if len(out) == 0 || out[0] != '\n' {
			// Not as expected: neither kept nor trusted.
			b, err := xml.MarshalIndent(v, "", "  ")
			return string(b), err
		}
		out = out[1:]
	}
	s := string(out)
	e.used = true
	domainEncoders.Put(e)
	return s, nil
}

// hashedText cuts what hashedBody leaves out of text, the domain's XML
// without metadata: the hotplug controllers and the disks of live volumes,
// each a child of <devices> (encoding/xml indents them by four spaces, and
// escapes "<" and newlines in every value, so "\n    <" starts one). ok is
// false when the text does not hold exactly the elements dom says it holds,
// or when nothing would be left in <devices>: hashedBody then marshals.
func hashedText(text string, dom *libvirtxml.Domain, live map[string]bool) (string, bool) {
	if dom.Devices == nil {
		return text, true
	}
	hotplug := map[string]bool{} // the hotplug controllers' aliases
	wantCtl, wantDisks := 0, 0
	for _, c := range dom.Devices.Controllers {
		if domain.IsHotplugController(c) {
			hotplug[c.Alias.Name] = true
			wantCtl++
		}
	}
	for _, d := range dom.Devices.Disks {
		if d.Alias != nil && live[strings.TrimPrefix(d.Alias.Name, "ua-")] {
			wantDisks++
		}
	}
	if wantCtl == 0 && wantDisks == 0 {
		return text, true
	}
	const open, close = "\n  <devices>", "\n  </devices>"
	start := strings.Index(text, open)
	end := strings.LastIndex(text, close)
	if start < 0 || end < start || strings.Count(text, open) != 1 {
		return "", false
	}
	start += len(open)
	var b strings.Builder
	b.Grow(len(text))
	b.WriteString(text[:start])
	kept, ctl, disks := 0, 0, 0
	for rest := text[start:end]; rest != ""; {
		next := childStart(rest[1:]) // rest starts with a child's "\n    <"
		child := rest
		if next >= 0 {
			child, rest = rest[:next+1], rest[next+1:]
		} else {
			rest = ""
		}
		alias := aliasOf(child)
		switch {
		case strings.HasPrefix(child, "\n    <controller ") && hotplug[alias]:
			ctl++
		case strings.HasPrefix(child, "\n    <disk ") && alias != "" && live[strings.TrimPrefix(alias, "ua-")]:
			disks++
		default:
			kept++
			b.WriteString(child)
		}
	}
	if ctl != wantCtl || disks != wantDisks || kept == 0 {
		return "", false
	}
	b.WriteString(text[end:])
	return b.String(), true
}

// childStart is the index in s of the next "\n    <" that opens an element
// (not an end tag), or -1.
func childStart(s string) int {
	for off := 0; ; {
		i := strings.Index(s[off:], "\n    <")
		if i < 0 {
			return -1
		}
		i += off
		if j := i + len("\n    <"); j < len(s) && s[j] != '/' {
			return i
		}
		off = i + 1
	}
}

// aliasOf is the name of a device element's own <alias>, "" without one
// or when it would need unescaping.
func aliasOf(device string) string {
	const tag = "\n      <alias name=\""
	i := strings.Index(device, tag)
	if i < 0 {
		return ""
	}
	name, _, ok := strings.Cut(device[i+len(tag):], "\"")
	if !ok || strings.ContainsAny(name, "&<>") {
		return ""
	}
	return name
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
