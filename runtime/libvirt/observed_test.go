package virt

import (
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// openShared opens a caching Driver on test:///default, which every
// connection of this process shares (unlike a node file), and a second raw
// connection to it that plays virsh: changes made through it reach the
// Driver only as libvirt events, or not at all. Domains the test defines
// through either are undefined when it ends.
func openShared(t *testing.T) (*Driver, *libvirt.Connect) {
	t.Helper()
	d, err := Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.CacheDefinitions()
	c, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Close() })
	return d, c
}

// defineOOB defines a domain through the second connection and undefines it
// when the test ends.
func defineOOB(t *testing.T, c *libvirt.Connect, xml string) *libvirt.Domain {
	t.Helper()
	dom, err := c.DomainDefineXML(xml)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dom.Destroy()
		_ = dom.Undefine()
		_ = dom.Free()
	})
	return dom
}

// xmlOf lists the domains and returns name's XML.
func xmlOf(t *testing.T, d *Driver, name string) string {
	t.Helper()
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range doms {
		if x.Name == name {
			return x.XML
		}
	}
	t.Fatalf("domain %s not listed", name)
	return ""
}

const (
	cacheUUID1 = "0c7e1a52-3d55-4e4f-9a0e-7f1d2c3b4a01"
	cacheUUID2 = "0c7e1a52-3d55-4e4f-9a0e-7f1d2c3b4a02"
)

// A listing serves the cached document: the second listing returns the very
// string the first read (no new read, no new allocation of the document).
func TestDriver_CacheDefinitions_reusesDocuments(t *testing.T) {
	d, c := openShared(t)
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defineOOB(t, c, testDomain("cache-reuse", cacheUUID1, ""))
	awaitEvent(t, ch, hv.Event{Domain: "cache-reuse", Kind: hv.EventDefined, Detail: "added"})
	first := xmlOf(t, d, "cache-reuse")
	second := xmlOf(t, d, "cache-reuse")
	if first != second || !sameString(first, second) {
		t.Errorf("second listing read the document again; want the cached one")
	}
	d.ForgetDefinitions()
	if third := xmlOf(t, d, "cache-reuse"); sameString(third, first) || third != first {
		t.Errorf("after ForgetDefinitions the document was not read anew")
	}
}

// A redefinition by someone else (virsh define) fires a lifecycle event,
// which drops the cached document before any subscriber hears of it: the
// plan the event triggers sees the new definition.
func TestDriver_CacheDefinitions_outOfBandDefineSeen(t *testing.T) {
	d, c := openShared(t)
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defineOOB(t, c, testDomain("cache-oob", cacheUUID1, ""))
	awaitEvent(t, ch, hv.Event{Domain: "cache-oob", Kind: hv.EventDefined, Detail: "added"})
	if x := xmlOf(t, d, "cache-oob"); !strings.Contains(x, "<memory unit='KiB'>65536</memory>") {
		t.Fatalf("unexpected first document:\n%s", x)
	}
	changed := strings.Replace(testDomain("cache-oob", cacheUUID1, ""), `<memory unit="MiB">64</memory>`, `<memory unit="MiB">128</memory>`, 1)
	if _, err := c.DomainDefineXML(changed); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "cache-oob", Kind: hv.EventDefined, Detail: "updated"})
	if x := xmlOf(t, d, "cache-oob"); !strings.Contains(x, "<memory unit='KiB'>131072</memory>") {
		t.Errorf("listing after the define event still shows the old definition:\n%s", x)
	}
	// Metadata edits (virsh metadata, desc) fire their own event.
	dom, err := c.LookupDomainByName("cache-oob")
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	if err := dom.SetMetadata(libvirt.DOMAIN_METADATA_DESCRIPTION, "edited by hand", "", "", libvirt.DOMAIN_AFFECT_CONFIG); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(xmlOf(t, d, "cache-oob"), "edited by hand") {
		if time.Now().After(deadline) {
			t.Fatal("metadata change not seen 5 s after it was made")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The state is kept with the document, and a state change by someone else
// (virsh start, destroy) fires a lifecycle event that drops both: the listing
// after the event shows the new state and its reason.
func TestDriver_CacheDefinitions_outOfBandStateSeen(t *testing.T) {
	d, c := openShared(t)
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dom := defineOOB(t, c, testDomain("cache-state", cacheUUID2, ""))
	awaitEvent(t, ch, hv.Event{Domain: "cache-state", Kind: hv.EventDefined, Detail: "added"})
	stateOf := func() obs {
		t.Helper()
		for _, x := range mustDomains(t, d) {
			if x.Name == "cache-state" {
				return obs{x.State, x.Reason, x.Persistent}
			}
		}
		t.Fatal("cache-state not listed")
		return obs{}
	}
	if got := stateOf(); got.State != hv.Shutoff {
		t.Fatalf("first listing: %+v, want shut off", got)
	}
	_ = stateOf() // served from the cache
	if err := dom.Create(); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "cache-state", Kind: hv.EventStarted, Detail: "booted"})
	if got, want := stateOf(), (obs{hv.Running, "booted", true}); got != want {
		t.Errorf("after an out-of-band start: %+v, want %+v", got, want)
	}
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "cache-state", Kind: hv.EventStopped, Detail: "destroyed"})
	if got, want := stateOf(), (obs{hv.Shutoff, "destroyed", true}); got != want {
		t.Errorf("after an out-of-band destroy: %+v, want %+v", got, want)
	}
}

// Changes through the driver drop the cached document at once, without
// waiting for their event: a plan right after an apply sees what it wrote.
func TestDriver_CacheDefinitions_ownChangesSeenAtOnce(t *testing.T) {
	d, c := openShared(t)
	defineOOB(t, c, testDomain("cache-own", cacheUUID2, ""))
	ctx := t.Context()
	_ = xmlOf(t, d, "cache-own")
	changed := strings.Replace(testDomain("cache-own", cacheUUID2, ""), `<memory unit="MiB">64</memory>`, `<memory unit="MiB">256</memory>`, 1)
	if err := d.Define(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if x := xmlOf(t, d, "cache-own"); !strings.Contains(x, "<memory unit='KiB'>262144</memory>") {
		t.Errorf("listing right after Define shows the old definition:\n%s", x)
	}
	if err := d.Start(ctx, "cache-own"); err != nil {
		t.Fatal(err)
	}
	doms, err := d.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range doms {
		if x.Name == "cache-own" && x.State != hv.Running {
			t.Errorf("state after Start = %s, want running", x.State)
		}
	}
	if err := d.Destroy(ctx, "cache-own"); err != nil {
		t.Fatal(err)
	}
	if err := d.Undefine(ctx, "cache-own"); err != nil {
		t.Fatal(err)
	}
	for _, x := range mustDomains(t, d) {
		if x.Name == "cache-own" {
			t.Errorf("undefined domain still listed")
		}
	}
}

// Some configuration changes fire no event (virsh setmaxmem --config,
// setvcpus --config, autostart). A caching listing may miss them; the first
// listing after ForgetDefinitions (the agent's drift check) sees them, and a
// driver that does not cache sees them at once.
func TestDriver_CacheDefinitions_changeWithoutEventSeenByFullRead(t *testing.T) {
	d, c := openShared(t)
	plain, err := Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dom := defineOOB(t, c, testDomain("cache-noevent", cacheUUID1, ""))
	awaitEvent(t, ch, hv.Event{Domain: "cache-noevent", Kind: hv.EventDefined, Detail: "added"})
	_ = xmlOf(t, d, "cache-noevent")
	if err := dom.SetMemoryFlags(96*1024, libvirt.DOMAIN_MEM_CONFIG|libvirt.DOMAIN_MEM_MAXIMUM); err != nil {
		t.Fatal(err)
	}
	want := "<memory unit='KiB'>98304</memory>"
	if x := xmlOf(t, plain, "cache-noevent"); !strings.Contains(x, want) {
		t.Fatalf("a driver without cache does not see the change:\n%s", x)
	}
	select {
	case ev := <-ch:
		t.Fatalf("the change fired %v; this test needs one that fires none", ev)
	case <-time.After(300 * time.Millisecond):
	}
	d.ForgetDefinitions()
	if x := xmlOf(t, d, "cache-noevent"); !strings.Contains(x, want) {
		t.Errorf("the full read after ForgetDefinitions misses the change:\n%s", x)
	}
}

// A listing that overlaps an event must not keep what it read: the document
// may predate the change the event announces.
func TestDefinitions_storeAfterInvalidationKeepsNothing(t *testing.T) {
	var c definitions
	c.enable()
	epoch, _ := c.begin()
	c.drop(cacheUUID1) // an event while the listing reads
	c.store(epoch, map[string]definition{cacheUUID1: {persistent: true, xml: "<old/>"}}, map[string]bool{cacheUUID1: true})
	if _, ok := c.lookup(cacheUUID1, true); ok {
		t.Error("a document read before an event was kept")
	}
	epoch, _ = c.begin()
	c.store(epoch, map[string]definition{cacheUUID1: {persistent: true, xml: "<new/>"}}, map[string]bool{cacheUUID1: true})
	if x, ok := c.lookup(cacheUUID1, true); !ok || x.xml != "<new/>" {
		t.Errorf("lookup = %q, %v; want the stored document", x.xml, ok)
	}
	if _, ok := c.lookup(cacheUUID1, false); ok {
		t.Error("a persistent domain's document served for the transient one")
	}
	// A domain a listing no longer sees is forgotten.
	epoch, _ = c.begin()
	c.store(epoch, nil, map[string]bool{})
	if _, ok := c.lookup(cacheUUID1, true); ok {
		t.Error("an undefined domain's document kept")
	}
}

// A reconnect loses the events of the time in between: the whole cache goes.
func TestDriver_CacheDefinitions_reconnectForgetsAll(t *testing.T) {
	d := openTest(t, testDomain("vm-file", uuidA, "<test:runstate>5</test:runstate>"))
	d.CacheDefinitions()
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = mustDomains(t, d)
	if _, ok := d.defs.lookup(uuidA, true); !ok {
		t.Fatal("the listing cached nothing")
	}
	d.mu.Lock()
	if err := d.disconnect(); err != nil {
		t.Fatal(err)
	}
	d.mu.Unlock()
	d.signalDead()
	awaitEvent(t, ch, hv.Event{Kind: hv.EventOther, Detail: DetailReconnected})
	if _, ok := d.defs.lookup(uuidA, true); ok {
		t.Error("cached document survived the reconnect")
	}
}

// Listings, events and changes running at once (run with -race).
func TestDriver_CacheDefinitions_concurrent(t *testing.T) {
	d, c := openShared(t)
	dom := defineOOB(t, c, testDomain("cache-race", cacheUUID2, ""))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 50 {
				_ = mustDomains(t, d)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			_ = dom.SetMetadata(libvirt.DOMAIN_METADATA_TITLE, strings.Repeat("t", i%5+1), "", "", libvirt.DOMAIN_AFFECT_CONFIG)
		}
	})
	wg.Wait()
	d.ForgetDefinitions()
	got := xmlOf(t, d, "cache-race")
	want, err := dom.GetXMLDesc(libvirt.DOMAIN_XML_INACTIVE)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("listing after the storm differs from libvirt's document")
	}
}

func mustDomains(t *testing.T, d *Driver) []hv.Domain {
	t.Helper()
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return doms
}

// sameString reports whether a and b share their bytes, not only equal them.
func sameString(a, b string) bool {
	return len(a) > 0 && len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}
