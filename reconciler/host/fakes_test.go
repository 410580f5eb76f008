package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// world is a host under a temporary root: real files through runtime/hostfs
// (host and state directory), fakes for systemd, the boot loader, the PCI
// bus and SELinux that record what they are asked and fail on request.
type world struct {
	t       *testing.T
	root    string
	state   string
	fs      *hostfs.FS
	units   *fakeUnits
	kargs   *fakeKargs
	devices *fakeDevices
	selinux *fakeSELinux
	r       *Reconciler
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, root: t.TempDir(), state: t.TempDir()}
	w.fs = hostfs.New(w.root)
	w.units = &fakeUnits{fs: w.fs, live: true, enabled: map[string]bool{}, masked: map[string]bool{}, fail: map[string]error{},
		result: map[string]map[string]string{}, active: map[string]bool{}}
	w.kargs = &fakeKargs{name: "grub", running: []string{"root=/dev/vda", "ro"}}
	w.devices = &fakeDevices{}
	w.selinux = &fakeSELinux{mode: "disabled", labels: map[string]string{}}
	w.r = New(Config{SelfHeal: true}, w.deps())
	w.write("/proc/sys/kernel/random/boot_id", "boot-1\n", 0o444)
	return w
}

func (w *world) deps() Deps {
	return Deps{Files: w.fs, State: hostfs.New(w.state), Units: w.units, Kargs: w.kargs, Devices: w.devices, SELinux: w.selinux}
}

func (w *world) write(p, content string, mode os.FileMode) {
	w.t.Helper()
	if err := w.fs.WriteFile(p, []byte(content), mode, 0, 0); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) read(p string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(w.root, p))
	if err != nil {
		return "", false
	}
	return string(b), true
}

func (w *world) mode(p string) os.FileMode {
	st, err := os.Stat(filepath.Join(w.root, p))
	if err != nil {
		w.t.Fatal(err)
	}
	return st.Mode().Perm()
}

func (w *world) plan(h *nodeconfig.HostConfig) Plan {
	w.t.Helper()
	p, err := w.r.Plan(context.Background(), h)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) apply(h *nodeconfig.HostConfig) (Plan, Report) {
	w.t.Helper()
	p := w.plan(h)
	return p, w.r.Apply(context.Background(), p)
}

// kinds summarises a plan as "kind target" lines.
func kinds(acts []Action) []string {
	var out []string
	for _, a := range acts {
		s := string(a.Action) + " " + a.Target
		if a.Drift {
			s += " [drift]"
		}
		out = append(out, s)
	}
	return out
}

func results(rep Report) []string {
	var out []string
	for _, o := range rep.Outcomes {
		out = append(out, string(o.Action)+" "+o.Target+" "+string(o.Result))
	}
	return out
}

type fakeUnits struct {
	fs      *hostfs.FS
	live    bool
	enabled map[string]bool
	masked  map[string]bool
	active  map[string]bool
	fail    map[string]error // "enable x.service" -> error
	result  map[string]map[string]string
	calls   []string
	reloads int
}

func (f *fakeUnits) Live() bool { return f.live }
func (f *fakeUnits) Offline() string {
	if f.live {
		return ""
	}
	return "systemd is not running (test)"
}
func (f *fakeUnits) call(s string) error {
	f.calls = append(f.calls, s)
	return f.fail[s]
}
func (f *fakeUnits) Reload(context.Context) error { f.reloads++; return f.call("daemon-reload") }
func (f *fakeUnits) UnitFileState(_ context.Context, name string) (string, error) {
	switch {
	case f.masked[name]:
		return "masked", nil
	case f.enabled[name]:
		return "enabled", nil
	}
	if _, err := f.fs.Lstat("/etc/systemd/system/" + name); err == nil || strings.HasPrefix(name, "systemd-") {
		return "disabled", nil
	}
	return "not-found", nil
}
func (f *fakeUnits) Enable(_ context.Context, n string) error {
	if err := f.call("enable " + n); err != nil {
		return err
	}
	f.enabled[n] = true
	return nil
}
func (f *fakeUnits) Disable(_ context.Context, n string) error {
	if err := f.call("disable " + n); err != nil {
		return err
	}
	delete(f.enabled, n)
	return nil
}
func (f *fakeUnits) Mask(_ context.Context, n string) error {
	if err := f.call("mask " + n); err != nil {
		return err
	}
	f.masked[n] = true
	return nil
}
func (f *fakeUnits) Unmask(_ context.Context, n string) error {
	if err := f.call("unmask " + n); err != nil {
		return err
	}
	delete(f.masked, n)
	return nil
}
func (f *fakeUnits) run(verb, n string) (map[string]string, error) {
	if err := f.call(verb + " " + n); err != nil {
		return nil, err
	}
	if r, ok := f.result[n]; ok {
		return r, nil
	}
	f.active[n] = true
	return map[string]string{"Job": "done", "ActiveState": "active", "SubState": "exited", "Result": "success", "LoadState": "loaded"}, nil
}
func (f *fakeUnits) Start(_ context.Context, n string) (map[string]string, error) {
	return f.run("start", n)
}
func (f *fakeUnits) Restart(_ context.Context, n string) (map[string]string, error) {
	return f.run("restart", n)
}
func (f *fakeUnits) Stop(_ context.Context, n string) error {
	delete(f.active, n)
	return f.call("stop " + n)
}
func (f *fakeUnits) Properties(_ context.Context, n string) (map[string]string, error) {
	if f.active[n] {
		return map[string]string{"ActiveState": "active", "SubState": "exited", "Result": "success"}, nil
	}
	return map[string]string{"ActiveState": "inactive", "SubState": "dead"}, nil
}
func (f *fakeUnits) Reboot(context.Context) error { return f.call("reboot") }

type fakeKargs struct {
	name     string
	staged   []string
	running  []string
	stageErr error
	stages   int
}

func (f *fakeKargs) Name() string                             { return f.name }
func (f *fakeKargs) Staged(context.Context) ([]string, error) { return f.staged, nil }
func (f *fakeKargs) Running() ([]string, error)               { return f.running, nil }
func (f *fakeKargs) Stage(_ context.Context, want, drop []string) error {
	f.stages++
	if f.stageErr != nil {
		return f.stageErr
	}
	var out []string
	for _, s := range f.staged {
		if !contains(drop, s) {
			out = append(out, s)
		}
	}
	for _, s := range want {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	f.staged = out
	return nil
}

type fakeDevices struct {
	devs  []Device
	calls []string
}

func (f *fakeDevices) List() ([]Device, error) { return append([]Device(nil), f.devs...), nil }
func (f *fakeDevices) Bind(_ context.Context, addr, driver string) error {
	f.calls = append(f.calls, "bind "+addr+" "+driver)
	for i := range f.devs {
		if f.devs[i].Address == addr {
			f.devs[i].Driver = driver
			return nil
		}
	}
	return fmt.Errorf("no device %s", addr)
}
func (f *fakeDevices) Release(_ context.Context, addr string) error {
	f.calls = append(f.calls, "release "+addr)
	return nil
}

type fakeSELinux struct {
	mode   string
	labels map[string]string
}

func (f *fakeSELinux) Mode() (string, error) { return f.mode, nil }
func (f *fakeSELinux) Label(p string) (string, error) {
	l, ok := f.labels[p]
	if !ok {
		return "", os.ErrNotExist
	}
	return l, nil
}

func ptr[T any](v T) *T { return &v }

// seed is the seed's three configs, rendered: the IOMMU argument, vfio.conf
// and modules-load from the Butane file, the chcon unit with nodevirt's
// SELinux guard, and the permitted device.
func seed() *nodeconfig.HostConfig {
	src := func(obj string) nodeconfig.Source { return nodeconfig.Source{Object: obj} }
	unit := "[Unit]\nDescription=Set SELinux chcon for hostpath provisioner\nBefore=kubelet.service\n\n[Service]\nExecStart=/usr/bin/chcon -Rt container_file_t /var/hpvolumes\n\n[Install]\nWantedBy=multi-user.target\n"
	return &nodeconfig.HostConfig{
		Files: []nodeconfig.File{
			{Path: "/etc/modprobe.d/vfio.conf", Mode: 0o644, Contents: []byte("options vfio-pci ids=10de:1eb8\n"), Source: src("Butane 100-worker-vfiopci.bu")},
			{Path: "/etc/modules-load.d/vfio-pci.conf", Mode: 0o644, Contents: []byte("vfio-pci"), Source: src("Butane 100-worker-vfiopci.bu")},
		},
		Units: []nodeconfig.Unit{{Name: "hostpath-provisioner.service", Enabled: ptr(true), Contents: &unit,
			Dropins: []nodeconfig.Dropin{{Name: nodeconfig.SELinuxGuardDropin, Contents: "[Unit]\nConditionSecurity=selinux\n", Generated: "guard"}},
			Source:  src("MachineConfig 50-set-selinux-for-hostpath-provisioner")}},
		KernelArgs: []nodeconfig.KernelArg{{Value: "intel_iommu=on", Source: src("MachineConfig 100-worker-iommu")}},
		VFIO:       nodeconfig.VFIO{IDs: []string{"10de:1eb8"}, ModulesLoad: true},
		PCI:        []nodeconfig.PCIResource{{Selector: "10de:1eb8", ResourceName: "nvidia.com/TU104GL_Tesla_T4", Source: src("HyperConverged openshift-cnv/kubevirt-hyperconverged")}},
		Labels: []nodeconfig.LabelCheck{{Path: "/var/hpvolumes", Type: "container_file_t", Unit: "hostpath-provisioner.service",
			Source: src("MachineConfig 50-set-selinux-for-hostpath-provisioner")}},
	}
}
