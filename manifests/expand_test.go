package manifests

import (
	"errors"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// loadFiles writes files into a directory and loads it as one repository.
func loadFiles(t *testing.T, files map[string]string) *Set {
	t.Helper()
	s, err := Load(writeFiles(t, files), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkPaths(t, s)
	return s
}

func vmSpec(t *testing.T, s *Set, name string) (*Object, *kubevirtv1.VirtualMachineInstanceSpec) {
	t.Helper()
	for _, o := range s.Objects {
		if vm, ok := o.Value.(*kubevirtv1.VirtualMachine); ok && o.Ref.Name == name {
			return o, &vm.Spec.Template.Spec
		}
	}
	t.Fatalf("no VirtualMachine %s", name)
	return nil, nil
}

func corpusFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.KubeVirtExamples(t), name))
	if err != nil {
		t.Fatalf("corpus missing (it is part of the project's shared tree): %v", err)
	}
	return string(b)
}

// The corpus VM with clarge and windows, minus the memory.guest the generator
// left in it (see corpusRejected): the instancetype and preference reach the
// template as KubeVirt's expansion puts them there.
func TestExpand_clargeWindows(t *testing.T) {
	vmDoc := corpusFile(t, "vm-windows-clarge-windows.yaml")
	const guest = "        memory:\n          guest: 128Mi\n"
	if !strings.Contains(vmDoc, guest) {
		t.Fatalf("the corpus VM changed; its memory.guest lines are gone")
	}
	s := loadFiles(t, map[string]string{
		"vm.yaml":      strings.Replace(vmDoc, guest, "", 1),
		"clarge.yaml":  corpusFile(t, "clarge.yaml"),
		"windows.yaml": corpusFile(t, "windows.yaml"),
	})
	if errs := s.Diags.Errors(); len(errs) > 0 {
		t.Fatalf("unexpected errors:\n%v", errs.Err())
	}
	o, spec := vmSpec(t, s, "vm-windows-clarge-windows")
	if !o.Valid {
		t.Fatal("the expanded VM is invalid")
	}
	d := spec.Domain
	type summary struct {
		Sockets, Cores, Threads uint32
		Guest, DiskBus, Model   string
		Masquerade, SMM, SB     bool
		Relaxed, VPIndex        bool
		Spinlocks               uint32
		UTC, TPM                bool
		Hpet                    bool
		UUID                    string
		Grace                   int64
	}
	got := summary{
		Sockets: d.CPU.Sockets, Cores: d.CPU.Cores, Threads: d.CPU.Threads,
		Guest: d.Memory.Guest.String(), DiskBus: string(d.Devices.Disks[0].Disk.Bus),
		Model: d.Devices.Interfaces[0].Model, Masquerade: d.Devices.Interfaces[0].Masquerade != nil,
		SMM: on(d.Features.SMM), SB: *d.Firmware.Bootloader.EFI.SecureBoot,
		Relaxed: on(d.Features.Hyperv.Relaxed), VPIndex: d.Features.Hyperv.VPIndex != nil,
		Spinlocks: *d.Features.Hyperv.Spinlocks.Retries,
		UTC:       d.Clock.UTC != nil, TPM: d.Devices.TPM != nil, Hpet: d.Clock.Timer.HPET != nil && *d.Clock.Timer.HPET.Enabled,
		UUID: string(d.Firmware.UUID), Grace: *spec.TerminationGracePeriodSeconds,
	}
	want := summary{
		Sockets: 4, Cores: 1, Threads: 1, // cpu.guest 4, preferredCPUTopology sockets
		Guest: "2Gi", DiskBus: "sata", Model: "e1000", Masquerade: true,
		SMM: true, SB: true, Relaxed: true, VPIndex: false, Spinlocks: 8191,
		UTC: true, TPM: true, Hpet: false,
		UUID: "5d307ca9-b3ef-428c-8861-06e72d69f223", Grace: 0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("expanded template (-want +got):\n%s", diff)
	}
}

// The corpus as upstream ships it: KubeVirt rejects the VM, and so does nodevirt,
// with KubeVirt's message; the template stays as written.
func TestExpand_conflictIsKubeVirtsError(t *testing.T) {
	s := loadFiles(t, map[string]string{
		"vm.yaml":      corpusFile(t, "vm-windows-clarge-windows.yaml"),
		"clarge.yaml":  corpusFile(t, "clarge.yaml"),
		"windows.yaml": corpusFile(t, "windows.yaml"),
	})
	errs := s.Diags.Errors()
	if len(errs) != 1 {
		t.Fatalf("want one error, got:\n%v", errs.Err())
	}
	d := errs[0]
	const msg = "VM field(s) spec.template.spec.domain.memory.guest conflicts with selected instance type"
	if d.Path != "spec.template.spec.domain.memory.guest" || d.Message != msg || !errors.Is(d, ErrInstancetypeConflict) {
		t.Errorf("got %q at %q, want %q", d.Message, d.Path, msg)
	}
	if d.File != "vm.yaml" || d.Line != 29 {
		t.Errorf("reported at %s:%d, want vm.yaml:29 (the guest memory line)", d.File, d.Line)
	}
	o, spec := vmSpec(t, s, "vm-windows-clarge-windows")
	if o.Valid || spec.Domain.CPU != nil || spec.Domain.Memory.Guest.String() != "128Mi" {
		t.Errorf("Valid=%v cpu=%+v memory=%v: a VM that fails expansion is invalid and keeps its template as written", o.Valid, spec.Domain.CPU, spec.Domain.Memory.Guest)
	}
}

const (
	itSmall = "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterInstancetype\nmetadata:\n  name: small\nspec:\n  cpu: {guest: 2}\n  memory: {guest: 2Gi}\n"
	itLab   = "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata:\n  name: small\n  namespace: lab\nspec:\n  cpu: {guest: 8}\n  memory: {guest: 8Gi}\n"
	prefLab = "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachinePreference\nmetadata:\n  name: virtio\n  namespace: lab\nspec:\n  devices: {preferredDiskBus: virtio, preferredInterfaceModel: virtio}\n  cpu: {preferredCPUTopology: cores}\n"
)

// expandVM is a VM in namespace lab with the given matcher lines and
// template spec body (indented for template.spec).
func expandVM(matchers, body string) string {
	return "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: vm\n  namespace: lab\nspec:\n  runStrategy: Halted\n" +
		matchers + "  template:\n    spec:\n" + body
}

const volumeBody = "      domain:\n        devices:\n          disks: [{name: root}]\n      volumes: [{name: root, containerDisk: {image: quay.io/x:1}}]\n"

func TestExpand_references(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		check func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec)
	}{
		{
			name:  "kind defaults to the cluster instancetype",
			files: map[string]string{"vm.yaml": expandVM("  instancetype: {name: small}\n", volumeBody), "it.yaml": itSmall, "lab.yaml": itLab},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if spec.Domain.CPU.Sockets != 2 || spec.Domain.Memory.Guest.String() != "2Gi" {
					t.Errorf("cpu %+v memory %v, want the cluster instancetype's 2 vCPUs and 2Gi", spec.Domain.CPU, spec.Domain.Memory.Guest)
				}
			},
		},
		{
			name:  "namespaced kind is looked up in the VM's namespace",
			files: map[string]string{"vm.yaml": expandVM("  instancetype: {name: small, kind: virtualmachineinstancetypes}\n", volumeBody), "it.yaml": itSmall, "lab.yaml": itLab},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if spec.Domain.CPU.Sockets != 8 || spec.Domain.Memory.Guest.String() != "8Gi" {
					t.Errorf("cpu %+v memory %v, want lab/small's 8 vCPUs and 8Gi", spec.Domain.CPU, spec.Domain.Memory.Guest)
				}
			},
		},
		{
			name: "preference fills only what the VM leaves unset",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {name: small}\n  preference: {name: virtio, kind: VirtualMachinePreference}\n",
					"      domain:\n        devices:\n          disks: [{name: root, disk: {bus: sata}}, {name: data}]\n          interfaces: [{name: default, masquerade: {}, model: e1000}]\n"+
						"      networks: [{name: default, pod: {}}]\n      volumes: [{name: root, containerDisk: {image: quay.io/x:1}}, {name: data, emptyDisk: {capacity: 1Gi}}]\n"),
				"it.yaml": itSmall, "pref.yaml": prefLab,
			},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				devs := spec.Domain.Devices
				got := []string{string(devs.Disks[0].Disk.Bus), string(devs.Disks[1].Disk.Bus), devs.Interfaces[0].Model}
				if diff := cmp.Diff([]string{"sata", "virtio", "e1000"}, got); diff != "" {
					t.Errorf("disk buses and model (-want +got):\n%s", diff)
				}
				if c := spec.Domain.CPU; c.Sockets != 1 || c.Cores != 2 {
					t.Errorf("topology %+v, want the preferred cores", c)
				}
			},
		},
		{
			name: "vCPUs spread across sockets and cores",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {name: eight}\n  preference: {name: spread}\n", volumeBody),
				"it.yaml": "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterInstancetype\nmetadata:\n  name: eight\nspec:\n  cpu: {guest: 8}\n  memory: {guest: 1Gi, overcommitPercent: 25}\n",
				"p.yaml":  "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterPreference\nmetadata:\n  name: spread\nspec:\n  cpu: {preferredCPUTopology: spread, spreadOptions: {ratio: 4}}\n",
			},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if c := spec.Domain.CPU; c.Sockets != 2 || c.Cores != 4 || c.Threads != 1 {
					t.Errorf("topology %d/%d/%d, want 2 sockets × 4 cores", c.Sockets, c.Cores, c.Threads)
				}
				// overcommitPercent 25: the request is 75% of the guest memory.
				if r := spec.Domain.Resources.Requests.Memory().Value(); r != 805306368 {
					t.Errorf("memory request %d, want 805306368 (0.75 × 1Gi)", r)
				}
			},
		},
		{
			name: "instancetype inferred from the claim's labels",
			files: map[string]string{
				"vm.yaml":  expandVM("  instancetype: {inferFromVolume: root}\n", "      domain: {}\n      volumes: [{name: root, persistentVolumeClaim: {claimName: golden}}]\n"),
				"pvc.yaml": "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: golden\n  namespace: lab\n  labels:\n    instancetype.kubevirt.io/default-instancetype: small\nspec: {}\n",
				"it.yaml":  itSmall,
			},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if spec.Domain.Memory.Guest.String() != "2Gi" {
					t.Errorf("memory %v, want small's 2Gi", spec.Domain.Memory.Guest)
				}
			},
		},
		{
			name: "preference inferred from a dataVolumeTemplate's labels",
			files: map[string]string{
				"vm.yaml": "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: vm\n  namespace: lab\nspec:\n  runStrategy: Halted\n  preference: {inferFromVolume: root}\n" +
					"  dataVolumeTemplates:\n  - metadata:\n      name: root-dv\n      labels: {instancetype.kubevirt.io/default-preference: virtio, instancetype.kubevirt.io/default-preference-kind: VirtualMachinePreference}\n" +
					"    spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}\n" +
					"  template:\n    spec:\n      domain: {memory: {guest: 1Gi}}\n      volumes: [{name: root, dataVolume: {name: root-dv}}]\n",
				"pref.yaml": prefLab,
			},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if b := spec.Domain.Devices.Disks[0].Disk.Bus; b != "virtio" {
					t.Errorf("disk bus %q, want the preferred virtio", b)
				}
			},
		},
		{
			name: "inference failure ignored: the matcher is dropped",
			files: map[string]string{
				"vm.yaml": expandVM("  preference: {inferFromVolume: root, inferFromVolumeFailurePolicy: Ignore}\n",
					"      domain: {memory: {guest: 1Gi}}\n      volumes: [{name: root, containerDisk: {image: quay.io/x:1}}]\n"),
			},
			check: func(t *testing.T, spec *kubevirtv1.VirtualMachineInstanceSpec) {
				if spec.Domain.Memory.Guest.String() != "1Gi" {
					t.Errorf("memory %v, want the VM's own 1Gi", spec.Domain.Memory.Guest)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadFiles(t, tc.files)
			if errs := s.Diags.Errors(); len(errs) > 0 {
				t.Fatalf("unexpected errors:\n%v", errs.Err())
			}
			o, spec := vmSpec(t, s, "vm")
			if !o.Valid {
				t.Fatal("VM is invalid")
			}
			tc.check(t, spec)
		})
	}
}

// Each failure: the path, the rule and (where KubeVirt has one) its text.
func TestExpand_errors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []summaryLine
	}{
		{
			name:  "missing instancetype",
			files: map[string]string{"vm.yaml": expandVM("  instancetype: {name: large}\n", volumeBody), "it.yaml": itSmall},
			want:  []summaryLine{{"spec.instancetype.name", ErrInstancetypeNotFound, "the referenced instancetype is not in the repository: VirtualMachineClusterInstancetype large"}},
		},
		{
			name:  "missing preference, wrong namespace",
			files: map[string]string{"vm.yaml": strings.Replace(expandVM("  preference: {name: virtio, kind: VirtualMachinePreference}\n", volumeBody), "namespace: lab", "namespace: other", 1), "p.yaml": prefLab},
			want:  []summaryLine{{"spec.preference.name", ErrPreferenceNotFound, "the referenced preference is not in the repository: VirtualMachinePreference other/virtio"}},
		},
		{
			name:  "unknown kind",
			files: map[string]string{"vm.yaml": expandVM("  instancetype: {name: small, kind: Flavor}\n", volumeBody)},
			want:  []summaryLine{{"spec.instancetype.kind", ErrInstancetypeKind, `kind must be VirtualMachineInstancetype or VirtualMachineClusterInstancetype: got "Flavor"`}},
		},
		{
			name:  "no name",
			files: map[string]string{"vm.yaml": expandVM("  instancetype: {kind: VirtualMachineInstancetype}\n", volumeBody)},
			want:  []summaryLine{{"spec.instancetype", ErrMatcherName, "either name or inferFromVolume must be set"}},
		},
		{
			name: "referenced instancetype is invalid",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {name: small}\n", volumeBody),
				"it.yaml": strings.Replace(itSmall, "guest: 2}", "guest: 0}", 1),
			},
			want: []summaryLine{
				{"spec.cpu.guest", ErrInstancetypeCPUGuest, "cpu.guest must be at least 1"},
				{"spec.instancetype.name", ErrInstancetypeInvalid, "the referenced instancetype or preference has errors of its own: VirtualMachineClusterInstancetype small (it.yaml:1)"},
			},
		},
		{
			name: "CPU conflicts are all reported",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {name: small}\n", "      domain:\n        cpu: {sockets: 2}\n        resources: {requests: {cpu: 2}}\n"),
				"it.yaml": itSmall,
			},
			want: []summaryLine{
				{"spec.template.spec.domain.cpu.sockets", ErrInstancetypeConflict, "VM field(s) spec.template.spec.domain.cpu.sockets conflicts with selected instance type"},
				{"spec.template.spec.domain.resources.requests.cpu", ErrInstancetypeConflict, "VM field(s) spec.template.spec.domain.resources.requests.cpu conflicts with selected instance type"},
			},
		},
		{
			name: "annotation conflict",
			files: map[string]string{
				"vm.yaml": strings.Replace(expandVM("  instancetype: {name: a}\n", volumeBody), "  template:\n", "  template:\n    metadata:\n      annotations: {team: red}\n", 1),
				"it.yaml": "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterInstancetype\nmetadata:\n  name: a\nspec:\n  cpu: {guest: 1}\n  memory: {guest: 1Gi}\n  annotations: {team: blue}\n",
			},
			want: []summaryLine{{"spec.template.metadata.annotations.team", ErrInstancetypeConflict, "VM field(s) spec.template.metadata.annotations.team conflicts with selected instance type"}},
		},
		{
			name: "preference requires more vCPUs than the instancetype has",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {name: small}\n  preference: {name: big}\n", volumeBody),
				"it.yaml": itSmall,
				"p.yaml":  "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterPreference\nmetadata:\n  name: big\nspec:\n  requirements: {cpu: {guest: 4}, memory: {guest: 4Gi}}\n",
			},
			want: []summaryLine{
				{"spec.instancetype", ErrPreferenceRequirement, "preference requirement not met: insufficient CPU resources of 2 vCPU provided by instance type, preference requires 4 vCPU"},
				{"spec.instancetype", ErrPreferenceRequirement, "preference requirement not met: insufficient Memory resources of 2Gi provided by instance type, preference requires 4Gi"},
			},
		},
		{
			name: "inference failure rejected",
			files: map[string]string{
				"vm.yaml": expandVM("  instancetype: {inferFromVolume: root}\n", "      domain: {}\n      volumes: [{name: root, containerDisk: {image: quay.io/x:1}}]\n"),
			},
			want: []summaryLine{{"spec.instancetype.inferFromVolume", ErrInferFromVolume, `cannot infer from the volume: volume "root" is neither a persistentVolumeClaim nor a dataVolume`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadFiles(t, tc.files)
			if diff := cmp.Diff(tc.want, summaryLines(s.Diags.Errors()), cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			o, _ := vmSpec(t, s, "vm")
			if o.Valid {
				t.Error("VM is valid")
			}
		})
	}
}

// revisionName names a ControllerRevision, which a repository has none of:
// a warning, and the current object is used.
func TestExpand_revisionNameWarns(t *testing.T) {
	s := loadFiles(t, map[string]string{"vm.yaml": expandVM("  instancetype: {name: small, revisionName: vm-small-1}\n", volumeBody), "it.yaml": itSmall})
	if len(s.Diags) != 1 || s.Diags[0].Severity != diag.Warning || !errors.Is(s.Diags[0], ErrRevisionNameIgnored) ||
		s.Diags[0].Path != "spec.instancetype.revisionName" {
		t.Errorf("diagnostics %v, want one revisionName warning", s.Diags)
	}
	if o, spec := vmSpec(t, s, "vm"); !o.Valid || spec.Domain.CPU.Sockets != 2 {
		t.Error("the VM must expand with the current instancetype")
	}
}

// summaryLine is an error diagnostic reduced to path, rule and message.
type summaryLine struct {
	Path    string
	Rule    error
	Message string
}

func summaryLines(l diag.List) []summaryLine {
	rules := []error{ErrInstancetypeNotFound, ErrPreferenceNotFound, ErrInstancetypeKind, ErrPreferenceKind, ErrMatcherName,
		ErrInstancetypeInvalid, ErrInstancetypeConflict, ErrPreferenceRequirement, ErrInferFromVolume, ErrInstancetypeCPUGuest}
	var out []summaryLine
	for _, d := range l {
		line := summaryLine{Path: d.Path, Message: d.Message}
		for _, r := range rules {
			if errors.Is(d, r) {
				line.Rule = r
			}
		}
		out = append(out, line)
	}
	return out
}
