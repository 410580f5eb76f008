package vm

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// node is a generic XML element: enough structure to compare two domain
// documents field by field without knowing libvirt's schema.
type node struct {
	name     string
	attrs    map[string]string
	text     string
	children []*node
}

func parse(doc string) (*node, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err != nil {
			if root != nil && len(stack) == 0 {
				return root, nil
			}
			return nil, fmt.Errorf("parse domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: map[string]string{}}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += strings.TrimSpace(string(t))
			}
		}
	}
}

// ignored lists what libvirt fills in or rewrites on its own, so a freshly
// defined domain shows no drift: device addresses, aliases it generates,
// controllers it adds, and our own metadata (compared by hash instead).
var ignoredElements = map[string]bool{
	"metadata": true,
	"address":  true,
	"alias":    true,
}

// ownedDevices are device kinds whose extra entries in the observed domain
// count as drift (someone attached a disk by hand). Controllers, channels,
// USB hubs and the like are added by libvirt and are not ours to police.
var ownedDevices = map[string]bool{
	"disk": true, "interface": true, "hostdev": true, "filesystem": true, "watchdog": true,
}

// key gives a repeated element a stable identity: disks by target device,
// interfaces by user alias or MAC, controllers by type and index (libvirt
// gives an unindexed one index 0, and adds controllers of its own in between);
// the rest by position among siblings of the same name.
func key(n *node, idx int) string {
	switch n.name {
	case "controller":
		i := n.attrs["index"]
		if i == "" {
			i = "0"
		}
		return n.attrs["type"] + ":" + i
	case "disk":
		for _, c := range n.children {
			if c.name == "target" && c.attrs["dev"] != "" {
				return c.attrs["dev"]
			}
		}
	case "interface":
		for _, c := range n.children {
			if c.name == "alias" && strings.HasPrefix(c.attrs["name"], "ua-") {
				return c.attrs["name"]
			}
		}
		for _, c := range n.children {
			if c.name == "mac" {
				return c.attrs["address"]
			}
		}
	}
	return fmt.Sprint(idx)
}

// flatten maps every leaf value of the tree to a path. Repeated siblings get
// a bracketed key; single ones do not, so paths read like the XML.
func flatten(n *node, prefix string, out map[string]string) {
	if n.text != "" {
		out[prefix] = n.text
	}
	for k, v := range n.attrs {
		out[prefix+"@"+k] = v
	}
	count := map[string]int{}
	for _, c := range n.children {
		count[c.name]++
	}
	seen := map[string]int{}
	for _, c := range n.children {
		if ignoredElements[c.name] {
			continue
		}
		p := join(prefix, c.name)
		if count[c.name] > 1 || keyed(c.name) {
			p += "[" + key(c, seen[c.name]) + "]"
			seen[c.name]++
		}
		if len(c.attrs) == 0 && len(c.children) == 0 && c.text == "" {
			out[p] = "present"
		}
		flatten(c, p, out)
	}
}

// keyed elements are always bracketed by key, even when alone, so one
// desired element meets its observed counterpart among several.
func keyed(name string) bool {
	return name == "disk" || name == "interface" || name == "controller"
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// equivalent reports values libvirt canonicalises: machine type aliases
// (q35 becomes pc-q35-7.2) and the like.
func equivalent(path, want, got string) bool {
	if want == got {
		return true
	}
	if strings.HasSuffix(path, "os.type@machine") {
		switch want {
		case "q35":
			return strings.HasPrefix(got, "pc-q35-")
		case "pc":
			return strings.HasPrefix(got, "pc-i440fx-")
		}
	}
	return false
}

// Fields compares a desired domain document with an observed one. Only
// fields nodevirt sets are compared (libvirt adds many on its own), plus
// devices of the kinds nodevirt owns that appear in the observed domain only.
func Fields(desiredXML, observedXML string) ([]plan.Change, error) {
	want, err := parse(desiredXML)
	if err != nil {
		return nil, fmt.Errorf("desired: %w", err)
	}
	got, err := parse(observedXML)
	if err != nil {
		return nil, fmt.Errorf("observed: %w", err)
	}
	wf, gf := map[string]string{}, map[string]string{}
	flatten(want, "", wf)
	flatten(got, "", gf)
	var out []plan.Change
	for p, w := range wf {
		g, ok := gf[p]
		if ok && equivalent(p, w, g) {
			continue
		}
		out = append(out, plan.Change{Path: p, From: g, To: w})
	}
	// Devices present only in the observed domain.
	for _, dev := range devices(got) {
		if !ownedDevices[dev.name] {
			continue
		}
		p := dev.path
		if _, ok := wf[p+"@type"]; ok {
			continue
		}
		if _, ok := wf[p+"@model"]; ok {
			continue
		}
		if hasPrefix(wf, p) {
			continue
		}
		out = append(out, plan.Change{Path: p, From: "present", To: ""})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

type devEntry struct{ name, path string }

func devices(root *node) []devEntry {
	var out []devEntry
	for _, c := range root.children {
		if c.name != "devices" {
			continue
		}
		count := map[string]int{}
		for _, d := range c.children {
			count[d.name]++
		}
		seen := map[string]int{}
		for _, d := range c.children {
			p := "devices." + d.name
			if count[d.name] > 1 || keyed(d.name) {
				p += "[" + key(d, seen[d.name]) + "]"
				seen[d.name]++
			}
			out = append(out, devEntry{name: d.name, path: p})
		}
	}
	return out
}

func hasPrefix(m map[string]string, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p+".") || strings.HasPrefix(k, p+"@") || k == p {
			return true
		}
	}
	return false
}
