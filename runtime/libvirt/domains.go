package virt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

var (
	// ErrNotDefined is returned by Start for a name libvirt does not know.
	// It matches fs.ErrNotExist, so callers that must not import this cgo
	// package can still recognise it with errors.Is.
	ErrNotDefined = fmt.Errorf("domain is not defined: %w", fs.ErrNotExist)

	// ErrShuttingDown is returned by Start while the guest is still powering
	// off; starting is possible once the domain is shut off, which the next
	// stopped event announces.
	ErrShuttingDown = errors.New("domain is shutting down; start it again once it is shut off")
)

// shutdownPoll is how often Shutdown checks whether the guest has powered off.
const shutdownPoll = 100 * time.Millisecond

// undefineFlagSets are tried in order. The first removes everything libvirt
// keeps beside the definition; older libvirt lacks TPM (added in 8.9), and the
// test driver rejects NVRAM and CHECKPOINTS_METADATA with "unsupported flags",
// so each later set drops what the previous one may have been refused for.
var undefineFlagSets = []libvirt.DomainUndefineFlagsValues{
	libvirt.DOMAIN_UNDEFINE_NVRAM | libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE |
		libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
		libvirt.DOMAIN_UNDEFINE_TPM,
	libvirt.DOMAIN_UNDEFINE_NVRAM | libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE |
		libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
	libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
	0,
}

// Domains lists every domain, persistent and transient, sorted by name.
// After CacheDefinitions, a domain's XML comes from the cache when no event
// or change through this driver touched it since it was last read.
//
// State and persistence are asked of each domain: the bulk call
// (virConnectGetAllDomainStats with the state group) was measured no faster
// behind libvirtd and six times slower in process, where the binding's
// decoding of its answer costs more than the calls it saves.
func (d *Driver) Domains(ctx context.Context) ([]hv.Domain, error) {
	c, release, err := d.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer release()

	// The epoch is taken before anything is read, so an event for a change
	// that happens during the listing keeps its documents out of the cache.
	epoch, caching := d.defs.begin()
	doms, err := listDomains(c)
	if err != nil {
		return nil, wrapErr("list domains on", d.uri, err)
	}
	defer func() {
		for i := range doms {
			_ = doms[i].dom.Free()
		}
	}()

	out := make([]hv.Domain, 0, len(doms))
	var read map[string]definition
	var seen map[string]bool
	if caching {
		read, seen = map[string]definition{}, make(map[string]bool, len(doms))
	}
	for i := range doms {
		hd, fresh, err := d.describe(&doms[i], caching)
		if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
			// Gone since the listing (a transient domain that stopped).
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, hd)
		if caching {
			seen[hd.UUID] = true
			if fresh {
				read[hd.UUID] = definition{persistent: hd.Persistent, xml: hd.XML, state: hd.State, reason: hd.Reason}
			}
		}
	}
	if caching {
		d.defs.store(epoch, read, seen)
	}
	slices.SortFunc(out, func(a, b hv.Domain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// listedDomain is a domain of a listing, with the persistence the listing
// read for every domain at once.
type listedDomain struct {
	dom        libvirt.Domain
	uuid       string
	persistent bool
}

// listDomains lists every domain and which of them are persistent in two
// calls. Asked domain by domain, persistence is a round trip to libvirtd
// each: at 1,000 domains behind the daemon, reading state and persistence of
// each took 230–300 ms, the state alone after the two listings 110–160 ms
// (and the state of a cached domain is kept with its document: none).
// Everything is listed first and the persistent ones second, so a domain
// defined or undefined in between is described as it is when its XML is
// read, and none is left out.
func listDomains(c *libvirt.Connect) ([]listedDomain, error) {
	doms, err := c.ListAllDomains(0)
	if err != nil {
		return nil, err
	}
	out := make([]listedDomain, len(doms))
	for i := range doms {
		out[i].dom = doms[i]
	}
	fail := func(err error) ([]listedDomain, error) {
		for i := range out {
			_ = out[i].dom.Free()
		}
		return nil, err
	}
	persistent, err := c.ListAllDomains(libvirt.CONNECT_LIST_DOMAINS_PERSISTENT)
	if err != nil {
		return fail(err)
	}
	defined := make(map[string]bool, len(persistent))
	for i := range persistent {
		// The UUID is the handle's own: no call to libvirtd.
		if uuid, err := persistent[i].GetUUIDString(); err == nil {
			defined[uuid] = true
		}
		_ = persistent[i].Free()
	}
	for i := range out {
		uuid, err := out[i].dom.GetUUIDString()
		if err != nil {
			return fail(err)
		}
		out[i].uuid, out[i].persistent = uuid, defined[uuid]
	}
	return out, nil
}

// describe reads one domain; fresh tells whether its XML was read now rather
// than taken from the cache.
func (d *Driver) describe(ld *listedDomain, cached bool) (hd hv.Domain, fresh bool, err error) {
	dom := &ld.dom
	name, err := dom.GetName()
	if err != nil {
		return hv.Domain{}, false, wrapErr("read name of", "domain", err)
	}
	hd = hv.Domain{Name: name, UUID: ld.uuid, Persistent: ld.persistent}
	if cached {
		if e, ok := d.defs.lookup(hd.UUID, hd.Persistent); ok {
			hd.XML, hd.State, hd.Reason = e.xml, e.state, e.reason
			return hd, false, nil
		}
	}
	if hd.State, hd.Reason, err = domState(dom); err != nil {
		return hv.Domain{}, false, wrapErr("read state of", domainTarget(name), err)
	}
	// Drift is measured against the definition nodevirt wrote, not against
	// the live XML libvirt expanded at start; a transient domain has only
	// the live one.
	var flags libvirt.DomainXMLFlags
	if hd.Persistent {
		flags = libvirt.DOMAIN_XML_INACTIVE
	}
	if hd.XML, err = dom.GetXMLDesc(flags); err != nil {
		return hv.Domain{}, false, wrapErr("read XML of", domainTarget(name), err)
	}
	return hd, true, nil
}

func domState(dom *libvirt.Domain) (hv.State, string, error) {
	s, reason, err := dom.GetState()
	if err != nil {
		return "", "", err
	}
	st, r := stateName(s, reason)
	return st, r, nil
}

// Define creates or replaces the persistent definition. libvirt validates it
// against its RNG schema first (unknown elements are otherwise dropped
// silently). Replacing an existing name requires the same <uuid>. On a
// running domain only the next-boot configuration changes.
func (d *Driver) Define(ctx context.Context, domainXML string) error {
	t := domainTarget(nameOf(domainXML))
	c, release, err := d.acquire(ctx)
	if err != nil {
		return fmt.Errorf("define %s: %w", t, err)
	}
	defer release()
	dom, err := c.DomainDefineXMLFlags(domainXML, libvirt.DOMAIN_DEFINE_VALIDATE)
	if err != nil {
		return wrapErr("define", t, err)
	}
	// Not left to the event, which may arrive after the next listing.
	d.dropDomain(dom)
	_ = dom.Free() // freeing a handle we own cannot fail in a way we can act on
	return nil
}

// Start boots a defined domain; a running one is left alone, a paused one is
// resumed and a power-management-suspended one woken up. A domain booting
// from shut off gets a new non-persistent TPM (see resetTPM).
func (d *Driver) Start(ctx context.Context, name string) error {
	t := domainTarget(name)
	found, err := d.withStartConn(ctx, name, func(dom *libvirt.Domain) error {
		st, _, err := domState(dom)
		if err != nil {
			return wrapErr("read state of", t, err)
		}
		switch st {
		case hv.Running, hv.Blocked:
			return nil
		case hv.Paused:
			if err := dom.Resume(); err != nil {
				return wrapErr("resume", t, err)
			}
			return nil
		case hv.PMSuspended:
			if err := dom.PMWakeup(0); err != nil {
				return wrapErr("wake up", t, err)
			}
			return nil
		case hv.ShuttingOff:
			return fmt.Errorf("start %s: %w", t, ErrShuttingDown)
		}
		if err := d.resetTPM(dom); err != nil {
			return fmt.Errorf("start %s: %w", t, err)
		}
		if err := dom.Create(); err != nil {
			// Someone else may have started it between the check and now.
			if active, aerr := dom.IsActive(); aerr == nil && active {
				return nil
			}
			return wrapErr("start", t, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("start %s: %w", t, ErrNotDefined)
	}
	return nil
}

// Shutdown asks the guest to power off (ACPI power button) and destroys the
// domain if it is still running after grace. A grace of zero, or a paused
// guest (which cannot see the button), means destroy at once. A domain that is
// not running, or not defined, is left alone. If ctx ends while waiting, the
// guest is left running and ctx's error returned: a cancelled caller (an agent
// shutting down) must not hard-kill VMs.
func (d *Driver) Shutdown(ctx context.Context, name string, grace time.Duration) error {
	if grace <= 0 {
		return d.Destroy(ctx, name)
	}
	t := domainTarget(name)
	var (
		active, paused bool
		askErr         error
	)
	_, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		var err error
		if active, err = isActive(dom); err != nil || !active {
			return wrapErrIf("read state of", t, err)
		}
		st, _, err := domState(dom)
		if err != nil {
			return wrapErr("read state of", t, err)
		}
		if st == hv.Paused || st == hv.PMSuspended {
			paused = true
			return nil
		}
		askErr = askShutdown(dom)
		return nil
	})
	if err != nil || !active {
		return err
	}
	if paused || askErr != nil {
		// Waiting is pointless if the guest cannot act on the request.
		if err := d.Destroy(ctx, name); err != nil {
			return errors.Join(wrapErrIf("shut down", t, askErr), err)
		}
		return nil
	}

	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for {
		var running bool
		if _, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
			var err error
			running, err = isActive(dom)
			return wrapErrIf("read state of", t, err)
		}); err != nil {
			return fmt.Errorf("shut down %s: %w", t, err)
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shut down %s: still running: %w", t, ctx.Err())
		case <-deadline.C:
			if err := d.Destroy(ctx, name); err != nil {
				return fmt.Errorf("shut down %s: guest ignored the request for %s: %w", t, grace, err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// askShutdown presses the ACPI power button, falling back to the
// hypervisor's default method where the flag is refused (the test driver
// accepts no flags).
func askShutdown(dom *libvirt.Domain) error {
	err := dom.ShutdownFlags(libvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
	if unsupportedFlags(err) {
		err = dom.Shutdown()
	}
	if err == nil {
		return nil
	}
	// It may have stopped on its own meanwhile.
	if active, aerr := isActive(dom); aerr == nil && !active {
		return nil
	}
	return err
}

// Destroy powers the domain off at once. A domain that is not running, or not
// defined, is left alone.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	t := domainTarget(name)
	_, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		active, err := isActive(dom)
		if err != nil || !active {
			return wrapErrIf("read state of", t, err)
		}
		if err := dom.Destroy(); err != nil {
			if active, aerr := isActive(dom); aerr == nil && !active {
				return nil
			}
			return wrapErr("destroy", t, err)
		}
		return nil
	})
	return err
}

// Pause suspends a running domain's vCPUs (virsh suspend); the guest keeps
// its memory and resumes where it stopped. A paused domain is left alone.
func (d *Driver) Pause(ctx context.Context, name string) error {
	return d.pauseOrResume(ctx, name, true)
}

// Resume lets a paused domain run again (virsh resume). A domain that is
// not paused is left alone.
func (d *Driver) Resume(ctx context.Context, name string) error {
	return d.pauseOrResume(ctx, name, false)
}

func (d *Driver) pauseOrResume(ctx context.Context, name string, pause bool) error {
	t := domainTarget(name)
	op := "resume"
	if pause {
		op = "pause"
	}
	found, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		st, _, err := domState(dom)
		if err != nil {
			return wrapErr("read state of", t, err)
		}
		switch {
		case !st.Active():
			return fmt.Errorf("%s %s: domain is not running", op, t)
		case pause && st == hv.Paused, !pause && st != hv.Paused:
			return nil
		case pause:
			return wrapErrIf(op, t, dom.Suspend())
		}
		return wrapErrIf(op, t, dom.Resume())
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s %s: %w", op, t, ErrNotDefined)
	}
	return nil
}

// Undefine removes the persistent definition together with its managed save
// image, snapshot and checkpoint metadata, NVRAM and TPM state. A missing or
// transient domain is left alone: a transient domain has no definition and
// vanishes when it stops. An active persistent domain keeps running as a
// transient one, so callers stop it first.
func (d *Driver) Undefine(ctx context.Context, name string) error {
	t := domainTarget(name)
	_, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		persistent, err := dom.IsPersistent()
		if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
			return nil
		}
		if err != nil {
			return wrapErr("read persistence of", t, err)
		}
		if !persistent {
			return nil
		}
		for _, flags := range undefineFlagSets {
			err = dom.UndefineFlags(flags)
			if err == nil || errors.Is(err, libvirt.ERR_NO_DOMAIN) {
				return nil
			}
			if !unsupportedFlags(err) {
				break
			}
		}
		return wrapErr("undefine", t, err)
	})
	return err
}

// withDomain runs fn on the named domain under a live connection. found is
// false (and fn not called) when libvirt does not know the name.
func (d *Driver) withDomain(ctx context.Context, name string, fn func(*libvirt.Domain) error) (found bool, err error) {
	return d.withDomainConn(ctx, name, func(_ *libvirt.Connect, dom *libvirt.Domain) error { return fn(dom) })
}

// isActive asks libvirt whether the domain has a running process. A domain
// that vanished meanwhile (transient) counts as inactive.
func isActive(dom *libvirt.Domain) (bool, error) {
	active, err := dom.IsActive()
	if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
		return false, nil
	}
	return active, err
}

// unsupportedFlags reports libvirt refusing a flag combination: drivers
// answer "unsupported flags (0x…)" as an invalid argument, or lack support
// for the flagged variant of the call altogether.
func unsupportedFlags(err error) bool {
	var lv libvirt.Error
	if !errors.As(err, &lv) {
		return false
	}
	return lv.Code == libvirt.ERR_NO_SUPPORT ||
		(lv.Code == libvirt.ERR_INVALID_ARG && strings.Contains(lv.Message, "unsupported flags"))
}

// nameOf extracts the domain name from XML for error messages only; libvirt
// does the real parsing.
func nameOf(domainXML string) string {
	var v struct {
		Name string `xml:"name"`
	}
	if err := xml.Unmarshal([]byte(domainXML), &v); err != nil {
		return ""
	}
	return strings.TrimSpace(v.Name)
}

func domainTarget(name string) string {
	if name == "" {
		return "domain"
	}
	return fmt.Sprintf("domain %q", name)
}

// opError reports a failed libvirt call as "<op> <target>: <libvirt's
// message>", instead of the binding's "virError(Code=…, Domain=…, Message=…)",
// and unwraps to the libvirt.Error so errors.Is(err, libvirt.ERR_…) works.
type opError struct {
	op, target string
	err        error
}

func (e *opError) Error() string {
	msg := e.err.Error()
	var lv libvirt.Error
	if errors.As(e.err, &lv) {
		msg = lv.Message
	}
	return e.op + " " + e.target + ": " + msg
}

func (e *opError) Unwrap() error { return e.err }

// Is makes a lost or unreachable libvirtd match hv.ErrUnavailable.
func (e *opError) Is(target error) bool {
	return target == hv.ErrUnavailable && connectionLost(e.err)
}

// connectionLost tells an error of the client's link to libvirtd (daemon
// not listening, socket closed or reset mid-call) from an operation libvirtd
// refused. Only errors raised by the RPC layer or the remote driver count: a
// system error from QEMU (a disk it cannot open) is the VM's, not the link's.
func connectionLost(err error) bool {
	var lv libvirt.Error
	if !errors.As(err, &lv) {
		return false
	}
	switch lv.Code {
	case libvirt.ERR_NO_CONNECT, libvirt.ERR_INVALID_CONN:
		return true
	case libvirt.ERR_SYSTEM_ERROR, libvirt.ERR_INTERNAL_ERROR, libvirt.ERR_RPC:
		return lv.Domain == libvirt.FROM_RPC || lv.Domain == libvirt.FROM_REMOTE
	}
	return false
}

func wrapErr(op, target string, err error) error {
	return &opError{op: op, target: target, err: err}
}

// wrapErrIf is wrapErr that passes nil through.
func wrapErrIf(op, target string, err error) error {
	if err == nil {
		return nil
	}
	return wrapErr(op, target, err)
}
