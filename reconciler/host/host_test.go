package host

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// A new config is applied in the Machine Config Daemon's order, the
// reboot is reported, and the next plan is empty.
func TestApply_seedConfig(t *testing.T) {
	w := newWorld(t)
	p, rep := w.apply(seed())
	want := []string{
		"write-file /etc/modprobe.d/vfio.conf done",
		"write-file /etc/modules-load.d/vfio-pci.conf done",
		"write-unit /etc/systemd/system/hostpath-provisioner.service done",
		"write-unit /etc/systemd/system/hostpath-provisioner.service.d/10-nodevirt-selinux.conf done",
		"enable-unit hostpath-provisioner.service done",
		"stage-kargs kernel arguments (grub) done",
		"start-unit hostpath-provisioner.service done",
		"restart-unit systemd-modules-load.service done",
		"not-applicable /var/hpvolumes reported",
		"reboot-required kernel arguments reported",
		"reboot-required /etc/modprobe.d reported",
	}
	if diff := cmp.Diff(want, results(rep)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if rep.Failed != 0 || !rep.RebootRequired || rep.Rebooting {
		t.Errorf("report: %+v", rep)
	}
	if got, _ := w.read("/etc/modprobe.d/vfio.conf"); got != "options vfio-pci ids=10de:1eb8\n" || w.mode("/etc/modprobe.d/vfio.conf") != 0o644 {
		t.Errorf("vfio.conf = %q %v", got, w.mode("/etc/modprobe.d/vfio.conf"))
	}
	// daemon-reload between writing unit files and enabling them.
	if diff := cmp.Diff([]string{"daemon-reload", "enable hostpath-provisioner.service", "start hostpath-provisioner.service", "restart systemd-modules-load.service"}, w.units.calls); diff != "" {
		t.Errorf("systemd calls (-want +got):\n%s", diff)
	}
	if !cmp.Equal(w.kargs.staged, []string{"intel_iommu=on"}) {
		t.Errorf("staged = %v", w.kargs.staged)
	}
	if _, ok := w.read("/run/reboot-required"); !ok {
		t.Error("no /run/reboot-required stamp")
	}
	if p.Empty() {
		t.Error("the first plan is not empty")
	}
	// Once applied: only the reports stay (the host has not rebooted).
	p = w.plan(seed())
	if !p.Empty() {
		t.Fatalf("second plan: %v", kinds(p.Actions))
	}
	if diff := cmp.Diff([]string{"not-applicable /var/hpvolumes", "reboot-required kernel arguments", "reboot-required /etc/modprobe.d"}, kinds(p.Actions)); diff != "" {
		t.Errorf("second plan (-want +got):\n%s", diff)
	}
	// After the reboot with the argument, nothing is left.
	w.kargs.running = append(w.kargs.running, "intel_iommu=on")
	w.write("/proc/sys/kernel/random/boot_id", "boot-2\n", 0o444)
	if p := w.plan(seed()); !cmp.Equal(kinds(p.Actions), []string{"not-applicable /var/hpvolumes"}) {
		t.Errorf("after reboot: %v", kinds(p.Actions))
	}
}

// Drift: file bytes and mode changed, unit disabled and masked, kernel
// argument missing from the staged config, device rebound, SELinux label
// changed. Each is reported field by field and healed unless self-heal is
// off.
func TestDiff_drift(t *testing.T) {
	w := newWorld(t)
	h := seed()
	h.VFIO.Bind = true
	w.devices.devs = []Device{{Address: "0000:02:01.0", Vendor: "10de", Device: "1eb8", Driver: "nvidia", IOMMUGroup: "14"}}
	w.selinux.mode = "enforcing"
	w.selinux.labels["/var/hpvolumes"] = "system_u:object_r:container_file_t:s0"
	if _, rep := w.apply(h); rep.Failed != 0 {
		t.Fatalf("apply: %+v", rep)
	}
	if p := w.plan(h); !p.Empty() {
		t.Fatalf("not in sync after apply: %v", kinds(p.Actions))
	}

	w.write("/etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:1eb8,dead:beef\n", 0o600)
	delete(w.units.enabled, "hostpath-provisioner.service")
	w.kargs.staged = nil
	w.devices.devs[0].Driver = "nouveau"
	w.selinux.labels["/var/hpvolumes"] = "system_u:object_r:var_t:s0"

	p := w.plan(h)
	want := []string{
		"write-file /etc/modprobe.d/vfio.conf [drift]",
		"enable-unit hostpath-provisioner.service [drift]",
		"stage-kargs kernel arguments (grub) [drift]",
		"bind-device 0000:02:01.0 [drift]",
		"restart-unit hostpath-provisioner.service [drift]",
		"reboot-required kernel arguments",
		"reboot-required /etc/modprobe.d",
	}
	if diff := cmp.Diff(want, kinds(p.Actions)); diff != "" {
		t.Fatalf("drift plan (-want +got):\n%s", diff)
	}
	changes := map[string][]plan.Change{}
	for _, a := range p.Actions {
		changes[a.Target] = a.Changes
	}
	for target, want := range map[string][]plan.Change{
		"/etc/modprobe.d/vfio.conf": {
			{Path: "contents", From: "41 bytes sha256:8e13634f9ca0", To: "31 bytes sha256:328c85080e75\n" +
				"--- /etc/modprobe.d/vfio.conf (host)\n+++ /etc/modprobe.d/vfio.conf (source)\n@@ -1 +1 @@\n" +
				"-options vfio-pci ids=10de:1eb8,dead:beef\n+options vfio-pci ids=10de:1eb8"},
			{Path: "mode", From: "0600", To: "0644"},
		},
		"hostpath-provisioner.service": {{Path: "security.selinux[/var/hpvolumes]", From: "system_u:object_r:var_t:s0", To: "type container_file_t"}},
		"0000:02:01.0":                 {{Path: "driver", From: "nouveau", To: "vfio-pci"}},
		"kernel arguments (grub)":      {{Path: "kernelArguments[intel_iommu=on]", From: "", To: "staged"}},
	} {
		if diff := cmp.Diff(want, changes[target]); diff != "" {
			t.Errorf("%s changes (-want +got):\n%s", target, diff)
		}
	}

	// Self-heal off: reported, skipped.
	off := New(Config{SelfHeal: false}, w.deps())
	rep := off.Apply(context.Background(), p)
	for _, o := range rep.Outcomes {
		if o.Drift && o.Result != "skipped" {
			t.Errorf("self-heal off: %s %s %s", o.Action, o.Target, o.Result)
		}
	}
	if got, _ := w.read("/etc/modprobe.d/vfio.conf"); !strings.Contains(got, "dead:beef") {
		t.Error("self-heal off changed the file")
	}

	// Self-heal on: healed.
	rep = w.r.Apply(context.Background(), w.plan(h))
	if rep.Failed != 0 {
		t.Fatalf("heal: %v", rep)
	}
	if got, _ := w.read("/etc/modprobe.d/vfio.conf"); got != "options vfio-pci ids=10de:1eb8\n" || w.mode("/etc/modprobe.d/vfio.conf") != 0o644 {
		t.Errorf("vfio.conf after heal = %q %v", got, w.mode("/etc/modprobe.d/vfio.conf"))
	}
	if !w.units.enabled["hostpath-provisioner.service"] || !cmp.Equal(w.kargs.staged, []string{"intel_iommu=on"}) || w.devices.devs[0].Driver != "vfio-pci" {
		t.Errorf("after heal: enabled %v staged %v driver %s", w.units.enabled, w.kargs.staged, w.devices.devs[0].Driver)
	}

	// Masked: unmask and enable.
	w.units.masked["hostpath-provisioner.service"] = true
	if diff := cmp.Diff([]string{"unmask-unit hostpath-provisioner.service [drift]", "enable-unit hostpath-provisioner.service [drift]"},
		kinds(w.plan(h).Actions)[:2]); diff != "" {
		t.Errorf("masked (-want +got):\n%s", diff)
	}
}

// A permitted device nothing binds is reported; one vfio.conf binds at
// boot needs a reboot (or run-time binding).
func TestDiff_devices(t *testing.T) {
	w := newWorld(t)
	h := seed()
	h.Labels = nil
	h.PCI = append(h.PCI, nodeconfig.PCIResource{Selector: "10de:1db6", ResourceName: "nvidia.com/GV100GL_Tesla_V100"},
		nodeconfig.PCIResource{Selector: "8086:6f54", ResourceName: "intel.com/qat", External: true})
	w.devices.devs = []Device{
		{Address: "0000:02:01.0", Vendor: "10de", Device: "1eb8", Driver: "nouveau"},
		{Address: "0000:03:00.0", Vendor: "10de", Device: "1db6", Driver: "nouveau", IOMMUGroup: "3"},
		{Address: "0000:04:00.0", Vendor: "8086", Device: "6f54", Driver: "qat"},
	}
	w.kargs.running = append(w.kargs.running, "intel_iommu=on")
	w.kargs.staged = []string{"intel_iommu=on"}
	p := w.plan(h)
	var got []string
	for _, a := range p.Actions {
		if a.Action == RebootRequired || a.Action == DeviceUnbound {
			got = append(got, string(a.Action)+" "+a.Target+": "+a.Reason)
		}
	}
	if len(got) != 3 ||
		!strings.HasPrefix(got[0], "device-unbound 0000:03:00.0: permitted as nvidia.com/GV100GL_Tesla_V100 but bound to nouveau, and nothing binds 10de:1db6 to vfio-pci") ||
		!strings.Contains(got[1], "0000:02:01.0 (10de:1eb8) is bound to nouveau; vfio-pci claims it at boot") ||
		!strings.Contains(got[1], "no IOMMU group") {
		t.Errorf("device reports:\n%s", strings.Join(got, "\n"))
	}
}

// A config removed from the source: files nodevirt created are removed,
// files it replaced get their original back, its units are disabled, its
// kernel arguments dropped. Removing everything is confirmed, as the
// prune guard asks.
func TestApply_removedConfigRestoresOriginals(t *testing.T) {
	w := newWorld(t)
	w.r = New(Config{SelfHeal: true, AllowPruneAll: true}, w.deps())
	w.write("/etc/modprobe.d/vfio.conf", "# the distribution's own\n", 0o640)
	if _, rep := w.apply(seed()); rep.Failed != 0 {
		t.Fatalf("apply: %+v", rep)
	}
	empty := &nodeconfig.HostConfig{}
	p, rep := w.apply(empty)
	want := []string{
		"disable-unit hostpath-provisioner.service",
		"remove-file /etc/modules-load.d/vfio-pci.conf",
		"remove-file /etc/systemd/system/hostpath-provisioner.service",
		"remove-file /etc/systemd/system/hostpath-provisioner.service.d/10-nodevirt-selinux.conf",
		"restore-file /etc/modprobe.d/vfio.conf",
		"stage-kargs kernel arguments (grub)",
		"stop-unit hostpath-provisioner.service",
		"restart-unit systemd-modules-load.service",
		"reboot-required /etc/modprobe.d",
	}
	if diff := cmp.Diff(want, kinds(p.Actions)); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
	if rep.Failed != 0 {
		t.Fatalf("apply: %v", results(rep))
	}
	if got, _ := w.read("/etc/modprobe.d/vfio.conf"); got != "# the distribution's own\n" || w.mode("/etc/modprobe.d/vfio.conf") != 0o640 {
		t.Errorf("original = %q %v", got, w.mode("/etc/modprobe.d/vfio.conf"))
	}
	for _, gone := range []string{"/etc/modules-load.d/vfio-pci.conf", "/etc/systemd/system/hostpath-provisioner.service", "/etc/systemd/system/hostpath-provisioner.service.d"} {
		if _, ok := w.read(gone); ok {
			t.Errorf("%s still there", gone)
		}
		if _, err := w.fs.Lstat(gone); err == nil {
			t.Errorf("%s still there", gone)
		}
	}
	if len(w.kargs.staged) != 0 || w.units.enabled["hostpath-provisioner.service"] {
		t.Errorf("staged %v enabled %v", w.kargs.staged, w.units.enabled)
	}
	rec, _ := LoadRecord(w.deps().State)
	if len(rec.Files) != 0 || len(rec.Units) != 0 || len(rec.Kargs) != 0 {
		t.Errorf("record not emptied: %+v", rec)
	}
	if p := w.plan(empty); !p.Empty() {
		t.Errorf("not in sync: %v", kinds(p.Actions))
	}
}

// A step that fails rolls back what the apply changed: files get their
// previous content back, new files go, enabled units are disabled again,
// and the record is unchanged.
func TestApply_failureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(w *world)
		step string
	}{
		{"enable fails", func(w *world) { w.units.fail["enable hostpath-provisioner.service"] = errors.New("unit is broken") }, "enable-unit hostpath-provisioner.service failed"},
		{"kernel arguments fail", func(w *world) { w.kargs.stageErr = errors.New("update-grub: exit status 1") }, "stage-kargs kernel arguments (grub) failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.write("/etc/modprobe.d/vfio.conf", "# before\n", 0o644)
			tc.fail(w)
			_, rep := w.apply(seed())
			if !rep.RolledBack || rep.Failed != 1 || rep.Err() == nil {
				t.Fatalf("report: %v", results(rep))
			}
			found := false
			for _, r := range results(rep) {
				found = found || r == tc.step
				if strings.HasPrefix(r, "write-") && !strings.HasSuffix(r, "rolled-back") {
					t.Errorf("%s: want rolled-back", r)
				}
				if strings.HasPrefix(r, "start-unit") && !strings.HasSuffix(r, "skipped") {
					t.Errorf("%s: want skipped", r)
				}
			}
			if !found {
				t.Errorf("no %q in %v", tc.step, results(rep))
			}
			if got, _ := w.read("/etc/modprobe.d/vfio.conf"); got != "# before\n" {
				t.Errorf("vfio.conf = %q, want the previous content", got)
			}
			for _, gone := range []string{"/etc/modules-load.d/vfio-pci.conf", "/etc/systemd/system/hostpath-provisioner.service"} {
				if _, ok := w.read(gone); ok {
					t.Errorf("%s left behind", gone)
				}
			}
			if w.units.enabled["hostpath-provisioner.service"] {
				t.Error("unit left enabled")
			}
			rec, _ := LoadRecord(w.deps().State)
			if len(rec.Files) != 0 || len(rec.Kargs) != 0 {
				t.Errorf("record changed: %+v", rec)
			}
		})
	}
}

// A unit that fails is a failure with its result, after the files and
// units are in place (no rollback: the configuration was applied).
func TestApply_unitResult(t *testing.T) {
	w := newWorld(t)
	w.units.result["hostpath-provisioner.service"] = map[string]string{"Job": "done", "ActiveState": "failed", "SubState": "failed", "Result": "exit-code", "ExecMainStatus": "1"}
	_, rep := w.apply(seed())
	if rep.RolledBack || rep.Failed != 1 {
		t.Fatalf("report: %v", results(rep))
	}
	for _, o := range rep.Outcomes {
		if o.Action == StartUnit && !strings.Contains(o.Error, "Result=exit-code") {
			t.Errorf("error = %q", o.Error)
		}
	}
	// Not recorded as run: the next plan starts it again.
	if !strings.Contains(strings.Join(kinds(w.plan(seed()).Actions), ","), "start-unit hostpath-provisioner.service") {
		t.Error("a failed start is retried")
	}
	// Skipped by ConditionSecurity=selinux: not applicable, and done.
	w.units.result["hostpath-provisioner.service"] = map[string]string{"Job": "done", "ActiveState": "inactive", "SubState": "dead", "Result": "success", "ConditionResult": "false"}
	_, rep = w.apply(seed())
	for _, o := range rep.Outcomes {
		if o.Action == StartUnit && (o.Result != "not-applicable" || !strings.Contains(o.Detail, "ConditionSecurity=selinux")) {
			t.Errorf("start: %s %s", o.Result, o.Detail)
		}
	}
}

// Without a running systemd the unit takes effect at boot; it is started
// once systemd runs in the same boot.
func TestApply_offlineUnits(t *testing.T) {
	w := newWorld(t)
	w.units.live = false
	p, rep := w.apply(seed())
	if p.Systemd != "systemd is not running (test)" {
		t.Errorf("plan systemd = %q", p.Systemd)
	}
	for _, o := range rep.Outcomes {
		if o.Action == StartUnit && o.Result != "at-boot" {
			t.Errorf("start offline: %s", o.Result)
		}
		if o.Action == RestartUnit {
			t.Errorf("offline: no %s %s", o.Action, o.Target)
		}
	}
	if p := w.plan(seed()); strings.Contains(strings.Join(kinds(p.Actions), ","), "start-unit") {
		t.Errorf("offline again: %v", kinds(p.Actions))
	}
	w.units.live = true
	if p := w.plan(seed()); !strings.Contains(strings.Join(kinds(p.Actions), ","), "start-unit hostpath-provisioner.service") {
		t.Errorf("live in the same boot: %v", kinds(p.Actions))
	}
}

// An invalid config keeps what nodevirt applied from it.
func TestDiff_invalidConfigKeepsItsFiles(t *testing.T) {
	w := newWorld(t)
	if _, rep := w.apply(seed()); rep.Failed != 0 {
		t.Fatal(results(rep))
	}
	h := seed()
	h.Files = nil
	h.Invalid = []string{"Butane 100-worker-vfiopci.bu"}
	p := w.plan(h)
	for _, a := range p.Actions {
		if a.Action == RemoveFile || a.Action == RestoreFile {
			t.Errorf("invalid config's file removed: %s", a.Target)
		}
	}
	if !strings.Contains(strings.Join(kinds(p.Actions), ","), "keep Butane 100-worker-vfiopci.bu") {
		t.Errorf("no keep action: %v", kinds(p.Actions))
	}
}

// Masking a unit nodevirt wrote removes its file first.
func TestApply_mask(t *testing.T) {
	w := newWorld(t)
	if _, rep := w.apply(seed()); rep.Failed != 0 {
		t.Fatal(results(rep))
	}
	h := seed()
	h.Units[0].Mask = ptr(true)
	_, rep := w.apply(h)
	if rep.Failed != 0 {
		t.Fatal(results(rep))
	}
	if !w.units.masked["hostpath-provisioner.service"] {
		t.Error("not masked")
	}
	if _, ok := w.read("/etc/systemd/system/hostpath-provisioner.service"); ok {
		t.Error("unit file left under the mask")
	}
}

func TestResources(t *testing.T) {
	h := seed()
	h.PCI = append(h.PCI, nodeconfig.PCIResource{Selector: "8086:6f54", ResourceName: "intel.com/qat", External: true})
	devs := []Device{
		{Address: "0000:02:01.0", Vendor: "10de", Device: "1eb8", Driver: "vfio-pci"},
		{Address: "0000:02:02.0", Vendor: "10de", Device: "1eb8", Driver: "nouveau"},
		{Address: "0000:04:00.0", Vendor: "8086", Device: "6f54", Driver: "qat"},
	}
	got := map[string][2]int{}
	for _, r := range Resources(h, devs, Record{Resources: []string{"nvidia.com/GV100GL_Tesla_V100", "intel.com/qat"}}) {
		got[r.Name] = [2]int{len(r.Devices), len(r.Allocatable)}
	}
	want := map[string][2]int{"nvidia.com/TU104GL_Tesla_T4": {2, 1}, "intel.com/qat": {1, 1}, "nvidia.com/GV100GL_Tesla_V100": {0, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A host plan is plain data: read back from its JSON (files to write, units,
// kernel arguments, how to judge a start, the reboot to remember) it applies
// as the original does, on twin hosts.
func TestApply_planSurvivesJSON(t *testing.T) {
	type result struct {
		Outcomes, Units, Kargs []string
		Record                 Record
		VFIO                   string
	}
	var got [2]result
	for i, viaJSON := range []bool{false, true} {
		w := newWorld(t)
		// systemd skips the SELinux-guarded unit: the plan says that means
		// not applicable.
		w.units.result["hostpath-provisioner.service"] = map[string]string{"Job": "done", "ActiveState": "inactive", "SubState": "dead", "Result": "success", "ConditionResult": "false"}
		p := w.plan(seed())
		if viaJSON {
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var back Plan
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if again, _ := json.Marshal(back); string(again) != string(b) {
				t.Fatalf("the plan read back writes differently:\n%s\n%s", b, again)
			}
			p = back
		}
		rep := w.r.Apply(context.Background(), p)
		if rep.Failed != 0 || !rep.RebootRequired {
			t.Fatalf("json %v: %v", viaJSON, results(rep))
		}
		rec, err := LoadRecord(w.deps().State)
		if err != nil {
			t.Fatal(err)
		}
		vfio, _ := w.read("/etc/modprobe.d/vfio.conf")
		got[i] = result{results(rep), w.units.calls, w.kargs.staged, rec, vfio}
		if next := w.plan(seed()); !next.Empty() {
			t.Fatalf("json %v: after apply the plan is %v", viaJSON, kinds(next.Actions))
		}
	}
	if d := cmp.Diff(got[0], got[1]); d != "" {
		t.Fatalf("applying the plan read back from JSON differs (-original +read back):\n%s", d)
	}
}
