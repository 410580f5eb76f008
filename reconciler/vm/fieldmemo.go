package vm

import (
	"strings"
	"sync"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// fieldMemo remembers the last field comparison per domain, keyed by the
// exact desired and observed documents: comparing two strings is far cheaper
// than parsing two XML documents, and between iterations neither changes
// unless something happened.
type fieldMemo struct {
	mu sync.Mutex
	m  map[string]memoEntry
}

type memoEntry struct {
	desired, observed string
	changes           []plan.Change
	err               error
}

func (f *fieldMemo) compare(desiredXML, observedXML string) ([]plan.Change, error) {
	name := domainName(desiredXML)
	f.mu.Lock()
	e, ok := f.m[name]
	f.mu.Unlock()
	if ok && e.desired == desiredXML && e.observed == observedXML {
		return e.changes, e.err
	}
	changes, err := Fields(desiredXML, observedXML)
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]memoEntry{}
	}
	f.m[name] = memoEntry{desired: desiredXML, observed: observedXML, changes: changes, err: err}
	f.mu.Unlock()
	return changes, err
}

// forget drops entries of domains that no longer exist.
func (f *fieldMemo) forget(observed map[string]hv.Domain) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.m {
		if _, ok := observed[name]; !ok {
			delete(f.m, name)
		}
	}
}

// ownerMemo remembers each domain's ownership mark by the exact observed
// document, for the same reason as fieldMemo: reading it means tokenizing the
// document up to its metadata, on every plan, for every domain.
type ownerMemo struct {
	mu sync.Mutex
	m  map[string]ownerEntry
}

type ownerEntry struct {
	xml   string
	owner desired.Owner
	ok    bool
}

func (f *ownerMemo) ownerOf(name, xml string) (desired.Owner, bool) {
	f.mu.Lock()
	e, hit := f.m[name]
	f.mu.Unlock()
	if hit && e.xml == xml {
		return e.owner, e.ok
	}
	o, ok := desired.OwnerOf(xml)
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]ownerEntry{}
	}
	f.m[name] = ownerEntry{xml: xml, owner: o, ok: ok}
	f.mu.Unlock()
	return o, ok
}

// forget drops entries of domains that no longer exist.
func (f *ownerMemo) forget(observed map[string]hv.Domain) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.m {
		if _, ok := observed[name]; !ok {
			delete(f.m, name)
		}
	}
}

// domainName reads <name> from a domain document without parsing all of it;
// the key only has to be stable, so a document without one keys by itself.
func domainName(xml string) string {
	i := strings.Index(xml, "<name>")
	if i < 0 {
		return xml
	}
	j := strings.Index(xml[i:], "</name>")
	if j < 0 {
		return xml
	}
	return xml[i+len("<name>") : i+j]
}
