package vm_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hv"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// An apply of many VMs side by side where libvirt refuses one VM's XML:
// that VM fails alone (its start skipped), every other VM is defined,
// started and recorded, and the report reads as a sequential apply's does.
func TestReconciler_parallelApplyIsolatesAFailedDefine(t *testing.T) {
	const n, refused = 12, "default_vm05"
	var rows [2][]string
	for k, parallel := range []int{1, 6} {
		h := newHost(t, vm.Config{})
		db := h.stateDB()
		rec := h.agentWith(vm.Config{SelfHeal: true, Parallel: parallel}, db)
		var docs, names []string
		for i := range n {
			docs = append(docs, vmYAML(fmt.Sprintf("vm%02d", i), "64Mi", "Always"))
			names = append(names, fmt.Sprintf("default_vm%02d", i))
		}
		p, err := rec.Plan(context.Background(), h.render("r1", docs...))
		if err != nil {
			t.Fatal(err)
		}
		bad := *p.VMs[refused]
		bad.XML = strings.Replace(bad.XML, "<devices>", "<devices><no-such-device/>", 1)
		if bad.XML == p.VMs[refused].XML {
			t.Fatal("the domain XML has no <devices> to spoil")
		}
		p.VMs[refused] = &bad
		rep := rec.Apply(context.Background(), p)

		var want []string
		for _, a := range []string{"create", "start"} {
			for _, name := range names {
				row := a + " " + name + " done"
				switch {
				case name == refused && a == "create":
					row = a + " " + name + " failed"
				case name == refused:
					row = a + " " + name + " skipped"
				}
				want = append(want, row)
			}
		}
		for _, o := range rep.Outcomes {
			rows[k] = append(rows[k], string(o.Action)+" "+o.Target+" "+string(o.Result))
		}
		if d := cmp.Diff(want, rows[k]); d != "" {
			t.Fatalf("parallel %d: outcomes (-want +got):\n%s", parallel, d)
		}
		if rep.Failed != 1 || !strings.Contains(rep.Outcomes[5].Error, "failed to validate") {
			t.Fatalf("parallel %d: failed %d, error %q", parallel, rep.Failed, rep.Outcomes[5].Error)
		}

		doms := h.domains()
		recorded := map[string][]string{}
		for _, bucket := range []string{"vms", "started"} {
			if err := db.ForEach(bucket, func(key string, _ []byte) error {
				recorded[bucket] = append(recorded[bucket], key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		others := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == refused })
		for _, name := range others {
			if doms[name].State != hv.Running {
				t.Fatalf("parallel %d: %s is %q, want running", parallel, name, doms[name].State)
			}
		}
		if _, ok := doms[refused]; ok {
			t.Fatalf("parallel %d: the refused VM is defined", parallel)
		}
		for _, bucket := range []string{"vms", "started"} {
			if d := cmp.Diff(others, recorded[bucket]); d != "" {
				t.Fatalf("parallel %d: records in %s (-want +got):\n%s", parallel, bucket, d)
			}
		}
	}
	if d := cmp.Diff(rows[0], rows[1]); d != "" {
		t.Fatalf("parallel and sequential reports differ (-seq +par):\n%s", d)
	}
}

// callLog is the test driver with its starts and stops written down in
// the order libvirt saw them.
type callLog struct {
	*virt.Driver
	mu    sync.Mutex
	calls []string
}

func (c *callLog) add(call string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

func (c *callLog) Start(ctx context.Context, name string) error {
	err := c.Driver.Start(ctx, name)
	c.add("start " + name)
	return err
}

func (c *callLog) Shutdown(ctx context.Context, name string, grace time.Duration) error {
	c.add("stop " + name)
	return c.Driver.Shutdown(ctx, name, grace)
}

// A rename applied in parallel (the old VM's manifest gone, a new one
// added, beside other new VMs) starts the new VM before the old one stops.
func TestReconciler_parallelRenameStartsBeforeItDeletes(t *testing.T) {
	base := newHost(t, vm.Config{})
	log := &callLog{Driver: base.hv}
	d, err := disks.New(base.state, filepath.Join(base.state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	rec := vm.New(vm.Config{SelfHeal: true, Parallel: 4, DiskDir: filepath.Join(base.state, "disks")}, log, d, base.stateDB())
	apply := func(st *desired.State) vm.Report {
		p, err := rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		rep := rec.Apply(context.Background(), p)
		if rep.Failed > 0 {
			t.Fatalf("apply failed: %+v", rep.Outcomes)
		}
		return rep
	}
	apply(base.render("r1", vmYAML("old", "64Mi", "Always"), vmYAML("keep", "64Mi", "Always")))
	var docs []string
	for i := range 6 {
		docs = append(docs, vmYAML(fmt.Sprintf("new%d", i), "64Mi", "Always"))
	}
	log.mu.Lock()
	log.calls = nil
	log.mu.Unlock()
	rep := apply(base.render("r2", append(docs, vmYAML("keep", "64Mi", "Always"))...))
	if rep.Count(plan.Done) != 13 {
		t.Fatalf("want 6 creates, 6 starts and 1 delete done: %+v", rep.Outcomes)
	}
	stop := slices.Index(log.calls, "stop default_old")
	if stop < 0 {
		t.Fatalf("the old VM was never stopped: %v", log.calls)
	}
	for i := range 6 {
		if at := slices.Index(log.calls, fmt.Sprintf("start default_new%d", i)); at < 0 || at > stop {
			t.Fatalf("new%d started at %d, the old VM stopped at %d: %v", i, at, stop, log.calls)
		}
	}
	if doms := base.domains(); doms["default_new5"].State != hv.Running || len(doms) != 7 {
		t.Fatalf("domains after the rename: %v", doms)
	}
}
