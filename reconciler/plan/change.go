package plan

import "fmt"

// Change is one field whose observed value differs from the desired one.
type Change struct {
	// Path names the domain XML field, e.g. memory, vcpu,
	// devices.disk[vda].source@file or devices.interface[ua-default].mac@address.
	Path string `json:"path"`
	From string `json:"from"`
	To   string `json:"to"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s: %s -> %s", c.Path, orNone(c.From), orNone(c.To))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
