package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

// The running agent keeps domain documents between listings. A change by
// hand that fires no libvirt event (virsh setmaxmem --config) is still found,
// at the next drift check at the latest, and healed. The node is libvirt's
// shared test:///default, so a second connection can play virsh.
func TestAgent_changeWithoutEventHealedAtDriftCheck(t *testing.T) {
	dir := t.TempDir()
	n := &node{t: t, dir: dir, src: filepath.Join(dir, "src"), state: filepath.Join(dir, "state")}
	if err := os.MkdirAll(n.src, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if n.hv, err = virt.Open(context.Background(), "test:///default"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hv.Close() })
	if n.db, err = statedb.Open(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.db.Close() })
	virsh, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = virsh.Close() })

	n.write("vm.yaml", vmDoc("nodrift-event", "64Mi", "Always", ""))
	const drift = 700 * time.Millisecond
	d, err := disks.New(n.state, filepath.Join(n.state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(source.Options{URL: n.src, WorkDir: filepath.Join(n.state, "source")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{Interval: time.Hour, DriftInterval: drift, EventDebounce: 20 * time.Millisecond,
		Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
			DiskDir: filepath.Join(n.state, "disks"), VolumeDir: filepath.Join(n.state, "volumes")}}}
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(n.state, "disks")}, n.hv, d, n.db)
	a := agent.New(cfg, src, rec, n.hv).WithState(n.db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		// test:///default outlives the test: leave nothing defined.
		doms, _ := virsh.ListAllDomains(0)
		for _, d := range doms {
			if name, _ := d.GetName(); strings.Contains(name, "nodrift-event") {
				_ = d.Destroy()
				_ = d.Undefine()
			}
			_ = d.Free()
		}
	})

	// maxMem reads the next boot's maximum memory, in KiB, from the
	// definition (the running guest keeps its own).
	maxMem := func() uint64 {
		doms, err := virsh.ListAllDomains(0)
		if err != nil {
			t.Fatal(err)
		}
		var kib uint64
		for _, d := range doms {
			if name, _ := d.GetName(); strings.Contains(name, "nodrift-event") {
				x, err := d.GetXMLDesc(libvirt.DOMAIN_XML_INACTIVE)
				if err != nil {
					t.Fatal(err)
				}
				var def libvirtxml.Domain
				if err := def.Unmarshal(x); err != nil {
					t.Fatal(err)
				}
				if def.Memory != nil {
					kib = uint64(def.Memory.Value)
				}
			}
			_ = d.Free()
		}
		return kib
	}
	deadline := time.Now().Add(10 * time.Second)
	for maxMem() != 64*1024 {
		if time.Now().After(deadline) {
			t.Fatalf("VM not defined with 64 MiB within 10 s (max memory %d KiB)", maxMem())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Let the events of the define and start be handled, so the agent's
	// next listing would serve the cached document.
	time.Sleep(300 * time.Millisecond)
	doms, err := virsh.ListAllDomains(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if name, _ := d.GetName(); strings.Contains(name, "nodrift-event") {
			if err := d.SetMemoryFlags(128*1024, libvirt.DOMAIN_MEM_CONFIG|libvirt.DOMAIN_MEM_MAXIMUM); err != nil {
				t.Fatal(err)
			}
		}
		_ = d.Free()
	}
	changed := time.Now()
	// Two drift intervals: the one running when the change was made may have
	// listed just before it.
	for maxMem() != 64*1024 {
		if time.Since(changed) > 2*drift+2*time.Second {
			t.Fatalf("maximum memory changed by hand not healed %s after the change (drift interval %s)", time.Since(changed).Round(time.Millisecond), drift)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("healed %s after the change (drift interval %s)", time.Since(changed).Round(time.Millisecond), drift)
}
