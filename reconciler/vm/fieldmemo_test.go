package vm

import (
	"fmt"
	"testing"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

func ownedDoc(ns, name string) string {
	return fmt.Sprintf(`<domain type="kvm"><name>%s_%s</name><metadata><nv:owner xmlns:nv="https://nodevirt.io/xmlns/domain/1" kind="VirtualMachine" namespace="%s" name="%s" specHash="h"/></metadata></domain>`, ns, name, ns, name)
}

// The memo answers by the exact document: an ownership mark edited by hand
// (virsh metadata) is read anew, an unmarked document is not owned, and a
// domain gone from the host is forgotten.
func TestOwnerMemo(t *testing.T) {
	var m ownerMemo
	o, ok := m.ownerOf("d", ownedDoc("a", "web"))
	if !ok || o.Namespace != "a" || o.Name != "web" {
		t.Fatalf("first read = %+v, %v; want a/web", o, ok)
	}
	if o, ok = m.ownerOf("d", ownedDoc("b", "db")); !ok || o.Namespace != "b" || o.Name != "db" {
		t.Errorf("after the mark changed = %+v, %v; want b/db", o, ok)
	}
	if _, ok = m.ownerOf("d", `<domain type="kvm"><name>d</name></domain>`); ok {
		t.Error("a document without the mark reads as owned")
	}
	m.forget(map[string]hv.Domain{"other": {}})
	if len(m.m) != 0 {
		t.Errorf("entries of domains no longer observed kept: %v", m.m)
	}
}
