package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// vm builds a desired VM whose XML is wantXML with the given name and hash.
func vm(name string, rs kubevirtv1.VirtualMachineRunStrategy, hash string) *desired.VM {
	xml := strings.ReplaceAll(wantXML, "default_web", "default_"+name)
	xml = strings.Replace(xml, `name="web" specHash="sha256:aa"`, `name="`+name+`" specHash="`+hash+`"`, 1)
	return &desired.VM{
		Object: "VirtualMachine default/" + name, Kind: "VirtualMachine", Namespace: "default", Name: name,
		DomainName: "default_" + name, XML: xml, SpecHash: hash, RunStrategy: rs, SelfHeal: true, RestartOnChange: true,
	}
}

// observed is what libvirt reports for a VM nodevirt defined with hash.
func observed(name string, st hv.State, reason, hash string) hv.Domain {
	xml := strings.ReplaceAll(libvirtXML, "default_web", "default_"+name)
	xml = strings.Replace(xml, `name="web" specHash="sha256:aa"`, `name="`+name+`" specHash="`+hash+`"`, 1)
	return hv.Domain{Name: "default_" + name, State: st, Reason: reason, Persistent: true, XML: xml}
}

func state(vms ...*desired.VM) *desired.State {
	return &desired.State{Revision: "main@sha1:1", VMs: vms, Invalid: map[string]string{}}
}

type row struct {
	Kind  plan.Action
	Dom   string
	Drift bool
}

func rows(p Plan) []row {
	var out []row
	for _, a := range p.Actions {
		out = append(out, row{a.Action, a.Target, a.Drift})
	}
	return out
}

func TestDiff(t *testing.T) {
	const h1, h2 = "sha256:aa", "sha256:bb"
	always, halted, once, rerun, manual := kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyHalted,
		kubevirtv1.RunStrategyOnce, kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyManual
	for _, tc := range []struct {
		name string
		st   *desired.State
		obs  []hv.Domain
		opt  Options
		want []row
	}{
		{"new Always VM is created and started", state(vm("web", always, h1)), nil, Options{},
			[]row{{Create, "default_web", false}, {Start, "default_web", false}}},
		{"new Halted VM is only defined", state(vm("web", halted, h1)), nil, Options{},
			[]row{{Create, "default_web", false}}},
		{"new Manual VM is only defined", state(vm("web", manual, h1)), nil, Options{},
			[]row{{Create, "default_web", false}}},
		{"running and unchanged is in sync", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1)}, Options{}, nil},
		{"destroyed out of band is drift", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Shutoff, "destroyed", h1)}, Options{Started: map[string]bool{"default_web": true}},
			[]row{{Start, "default_web", true}}},
		{"changed in git while running: update then restart", state(vm("web", always, h2)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1)}, Options{},
			[]row{{Update, "default_web", false}, {Restart, "default_web", false}}},
		{"Halted and running is stopped", state(vm("web", halted, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1)}, Options{}, []row{{Stop, "default_web", false}}},
		{"Once already started and shut down stays off", state(vm("web", once, h1)),
			[]hv.Domain{observed("web", hv.Shutoff, "shutdown", h1)}, Options{Started: map[string]bool{"default_web": true}}, nil},
		{"RerunOnFailure after guest shutdown stays off", state(vm("web", rerun, h1)),
			[]hv.Domain{observed("web", hv.Shutoff, "shutdown", h1)}, Options{Started: map[string]bool{"default_web": true}}, nil},
		{"RerunOnFailure after a crash restarts", state(vm("web", rerun, h1)),
			[]hv.Domain{observed("web", hv.Shutoff, "crashed", h1)}, Options{Started: map[string]bool{"default_web": true}},
			[]row{{Start, "default_web", false}}},
		{"unowned domain with the same name is a conflict", state(vm("web", always, h1)),
			[]hv.Domain{{Name: "default_web", State: hv.Running, XML: "<domain><name>default_web</name></domain>"}}, Options{},
			[]row{{Conflict, "default_web", false}}},
		{"removed from git is deleted", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1), observed("old", hv.Running, "booted", h1)}, Options{},
			[]row{{Delete, "default_old", false}}},
		{"deleting every owned VM is held", state(),
			[]hv.Domain{observed("web", hv.Running, "booted", h1)}, Options{}, []row{{Hold, "default_web", false}}},
		{"deleting every owned VM with confirmation", state(),
			[]hv.Domain{observed("web", hv.Running, "booted", h1)}, Options{AllowPruneAll: true}, []row{{Delete, "default_web", false}}},
		{"deleting half with a 50% guard is held", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1), observed("old", hv.Running, "booted", h1)}, Options{PruneGuardShare: 0.5},
			[]row{{Hold, "default_old", false}}},
		{"an owned domain outside this agent's inventory is an orphan, not pruned", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1), observed("theirs", hv.Running, "booted", h1)},
			Options{Inventory: map[string]bool{"default_web": true}},
			[]row{{Orphan, "default_theirs", false}}},
		{"unowned domains are never pruned", state(vm("web", always, h1)),
			[]hv.Domain{observed("web", hv.Running, "booted", h1), {Name: "handmade", State: hv.Running, XML: "<domain/>"}}, Options{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rows(Diff(tc.st, tc.obs, tc.opt))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("actions (-want +got):\n%s", d)
			}
		})
	}
}

func TestDiff_pruneSuspendedByParseFailure(t *testing.T) {
	st := state(vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa"))
	st.PruneSuspended = true
	p := Diff(st, []hv.Domain{observed("web", hv.Running, "booted", "sha256:aa"), observed("old", hv.Running, "booted", "sha256:aa")}, Options{})
	if d := cmp.Diff([]row{{Hold, "default_old", false}}, rows(p)); d != "" {
		t.Fatalf("actions (-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[0].Reason, "failed to parse") {
		t.Fatalf("hold reason should name the parse failure: %q", p.Actions[0].Reason)
	}
}

func TestDiff_invalidKeepsLastGood(t *testing.T) {
	good := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	st := state()
	st.Invalid["default_web"] = "VirtualMachine default/web"
	// The domain was destroyed out of band while its manifest is broken: the
	// last good definition is still what nodevirt heals towards, and nothing is pruned.
	p := Diff(st, []hv.Domain{observed("web", hv.Shutoff, "destroyed", "sha256:aa")},
		Options{LastGood: map[string]*desired.VM{"default_web": good}, Started: map[string]bool{"default_web": true}})
	want := []row{{Keep, "default_web", false}, {Start, "default_web", true}}
	if d := cmp.Diff(want, rows(p)); d != "" {
		t.Fatalf("actions (-want +got):\n%s", d)
	}
}

func TestDiff_driftOfPersistentDefinition(t *testing.T) {
	obs := observed("web", hv.Running, "booted", "sha256:aa")
	obs.XML = strings.Replace(obs.XML, "<vcpu placement='static'>1</vcpu>", "<vcpu placement='static'>2</vcpu>", 1)
	p := Diff(state(vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")), []hv.Domain{obs}, Options{})
	if len(p.Actions) != 1 || p.Actions[0].Action != Update || !p.Actions[0].Drift {
		t.Fatalf("want one drift update, got %+v", p.Actions)
	}
	if d := cmp.Diff([]plan.Change{{Path: "vcpu", From: "2", To: "1"}}, p.Actions[0].Changes); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
}

func TestDiff_hugepagesWaitWhenShort(t *testing.T) {
	big := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	big.Hugepages = &desired.Hugepages{PageSizeKiB: 2048, Pages: 512}
	for _, tc := range []struct {
		name string
		free map[int64]int64
		want []row
	}{
		{"enough free pages", map[int64]int64{2048: 512}, []row{{Create, "default_web", false}, {Start, "default_web", false}}},
		{"too few free pages", map[int64]int64{2048: 100}, []row{{Create, "default_web", false}, {Wait, "default_web", false}}},
		{"no pool of that size", map[int64]int64{1048576: 4}, []row{{Create, "default_web", false}, {Wait, "default_web", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(state(big), nil, Options{FreeHugepages: tc.free})
			if d := cmp.Diff(tc.want, rows(p)); d != "" {
				t.Fatalf("actions (-want +got):\n%s", d)
			}
			if last := p.Actions[len(p.Actions)-1]; last.Action == Wait && !strings.Contains(last.Reason, "huge pages of 2048 KiB") {
				t.Fatalf("wait reason must name the shortfall: %q", last.Reason)
			}
		})
	}
}

func TestDiff_incompatibleCPUWaits(t *testing.T) {
	v := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	p := Diff(state(v), nil, Options{Unschedulable: map[string]string{"default_web": "Host CPU does not provide required features: avx512f"}})
	if d := cmp.Diff([]row{{Create, "default_web", false}, {Wait, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("actions (-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[1].Reason, "avx512f") {
		t.Fatalf("the reason must carry libvirt's answer: %q", p.Actions[1].Reason)
	}
}

func TestDiff_unschedulable(t *testing.T) {
	st := state()
	st.Unschedulable = map[string]string{
		"default_web": "VirtualMachine default/web: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
		"default_new": "VirtualMachine default/new: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
	}
	p := Diff(st, []hv.Domain{observed("web", hv.Running, "booted", "sha256:aa")}, Options{AllowPruneAll: true})
	if d := cmp.Diff([]row{{Wait, "default_new", false}, {Keep, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("actions (-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[0].Reason, "unschedulable: 0/1 nodes are available") || p.Actions[0].Object != "VirtualMachine default/new" {
		t.Fatalf("wait: %+v", p.Actions[0])
	}
}

// A running domain defined before the hotplug controllers existed has the
// same hash (they are not hashed): it is redefined to gain them, never
// restarted and never reported as drift; once defined, the plan is empty.
func TestDiff_hotplugControllersOnOldDomain(t *testing.T) {
	want := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	ctrl := `<controller type="scsi" index="0" model="virtio-non-transitional"><alias name="ua-nodevirt_hotplug-scsi"></alias></controller>` +
		`<controller type="pci" index="1" model="pcie-root-port"><alias name="ua-nodevirt_hotplug-port1"></alias></controller>`
	want.XML = strings.Replace(want.XML, "</devices>", ctrl+"</devices>", 1)
	old := observed("web", hv.Running, "booted", "sha256:aa")
	p := Diff(state(want), []hv.Domain{old}, Options{})
	if d := cmp.Diff([]row{{Update, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("old domain (-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[0].Reason, "restart required to add hotplug controllers") {
		t.Fatalf("reason %q does not say a restart adds them", p.Actions[0].Reason)
	}
	// libvirt's read-back: our controllers with its own attributes and
	// addresses, and a port of its own (index 2) in between.
	defined := old
	defined.XML = strings.Replace(old.XML, "<memballoon", `<controller type='pci' index='2' model='pcie-root-port'><model name='pcie-root-port'/><target chassis='2' port='0x9'/></controller>
    <controller type='scsi' index='0' model='virtio-non-transitional'><alias name='ua-nodevirt_hotplug-scsi'/><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></controller>
    <controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/><target chassis='1' port='0x8'/><alias name='ua-nodevirt_hotplug-port1'/></controller>
    <memballoon`, 1)
	if p := Diff(state(want), []hv.Domain{defined}, Options{}); len(p.Actions) != 0 {
		t.Fatalf("after the redefine: want no actions, got %+v", p.Actions)
	}
}

// A virtiofs share waits for its claim's directory as a disk waits for
// the claim's disk: the domain is not defined before storage made it.
func TestDiff_sharedDirWaits(t *testing.T) {
	v := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	v.Artifacts = []domain.Artifact{{Kind: domain.SharedDir, Volume: "share", Path: "/volumes/default/data", Claim: "data"}}
	p := Diff(state(v), nil, Options{Missing: map[string]bool{"/volumes/default/data": true}})
	if d := cmp.Diff([]row{{Wait, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("actions (-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[0].Reason, "shared directory /volumes/default/data of claim data") {
		t.Fatalf("the reason must name the directory and claim: %q", p.Actions[0].Reason)
	}
	p = Diff(state(v), nil, Options{})
	if d := cmp.Diff([]row{{Create, "default_web", false}, {Start, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("with the directory present (-want +got):\n%s", d)
	}
}
