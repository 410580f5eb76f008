package domain

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// TestFields_usedOrWarned sets every field of the support table, one at a
// time, on a base VM and converts it: a mapped field must change the domain
// or its artifacts (or draw a diagnostic naming it, for a value it cannot
// map), an ignored or refused one must draw a diagnostic naming it. So no
// field is read and silently dropped. Fields read elsewhere (defaulting,
// placement, lifecycle) are not the converter's and are skipped.
func TestFields_usedOrWarned(t *testing.T) {
	base := loadManifest(t, filepath.Join("testdata", "vm-every-field-base.yaml"))
	if out := convertWithResources(base); out.diags.HasErrors() {
		t.Fatalf("the base VM does not convert cleanly:\n%v", out.diags.Err())
	}
	for _, f := range fields {
		if f.Support == Elsewhere {
			continue
		}
		t.Run(f.Path, func(t *testing.T) {
			// The field's context (what it needs to have an effect) is
			// in the baseline too, so only the field itself differs.
			prepared := func() Input {
				in := base
				in.Spec = base.Spec.DeepCopy()
				prepare(in.Spec, f.Path)
				return in
			}
			baseOut := convertWithResources(prepared())
			var tried []string
			for _, candidate := range candidates(f.Path) {
				in := prepared()
				concrete, ok := setField(in.Spec, f.Path, candidate)
				if !ok {
					continue
				}
				got := convertWithResources(in)
				named := namesPath(got.diags, in.PathPrefix+"."+concrete)
				switch f.Support {
				case Ignored, Refused:
					if named {
						return
					}
				case Mapped:
					if named || got.xml != baseOut.xml || got.artifacts != baseOut.artifacts {
						return
					}
				}
				tried = append(tried, fmt.Sprintf("%q", fmt.Sprint(candidate)))
			}
			if len(tried) == 0 {
				t.Fatalf("no test value fits %s; add one to candidates", f.Path)
			}
			t.Errorf("%s is %s, but setting it (to %s) changed nothing and drew no diagnostic naming it: a field the converter reads must be mapped or warned",
				f.Path, f.Support, strings.Join(tried, ", "))
		})
	}
}

// namesPath reports a diagnostic at path or below it.
func namesPath(diags diag.List, path string) bool {
	for _, d := range diags {
		if d.Path == path || strings.HasPrefix(d.Path, path+".") || strings.HasPrefix(d.Path, path+"[") {
			return true
		}
	}
	return false
}

// empty stands for an empty object or a list of one empty element.
type empty struct{}

func (empty) String() string { return "{}" }

// candidates are the values tried for a field, until one shows it is used:
// its own values where a generic one would mean the default, then values of
// every kind (setLeaf skips those that do not fit the field's type).
func candidates(path string) []any {
	own := map[string][]any{
		"domain.resources.limits":                              {k8sv1.ResourceList{k8sv1.ResourceMemory: resource.MustParse("2Gi")}},
		"domain.cpu.numa":                                      {kubevirtv1.NUMA{GuestMappingPassthrough: &kubevirtv1.NUMAGuestMappingPassthrough{}}},
		"domain.memory.reservedOverhead":                       {kubevirtv1.ReservedOverhead{AddedOverhead: resource.NewQuantity(512<<20, resource.BinarySI)}},
		"domain.firmware.bootloader":                           {kubevirtv1.Bootloader{BIOS: &kubevirtv1.BIOS{UseSerial: ptr(true)}}},
		"domain.firmware.bootloader.bios":                      {kubevirtv1.BIOS{UseSerial: ptr(true)}},
		"domain.firmware.kernelBoot.container.image":           {"oci:/srv/other-kernel"},
		"domain.firmware.kernelBoot.container.imagePullPolicy": {"IfNotPresent"},
		"domain.features.acpi":                                 {kubevirtv1.FeatureState{Enabled: ptr(false)}},
		"domain.features.hypervPassthrough":                    {kubevirtv1.HyperVPassthrough{Enabled: ptr(true)}},
		"domain.chassis":                                       {kubevirtv1.Chassis{Manufacturer: "Acme"}},
		"domain.devices.video":                                 {kubevirtv1.VideoDevice{Type: "virtio"}},
		"domain.cpu.model":                                     {"Skylake-Client-IBRS"},
		"domain.rebootPolicy":                                  {"Terminate"},
		"domain.devices.disks[*].cache":                        {"writethrough"},
		"domain.devices.disks[*].io":                           {"native"},
		"domain.devices.disks[*].errorPolicy":                  {"report"},
		"domain.devices.disks[*].disk.bus":                     {"sata"},
		"domain.devices.disks[*].cdrom.tray":                   {"open"},
		"domain.devices.inputs[*].bus":                         {"virtio"},
		"domain.devices.inputs[*].type":                        {"keyboard"},
		"domain.devices.interfaces[*].model":                   {"e1000e"},
		"domain.devices.interfaces[*].state":                   {"down"},
		"domain.devices.interfaces[*].macAddress":              {"02:00:00:ab:cd:ef"},
		"architecture":                                         {"arm64"},
		"domain.memory.hugepages":                              {kubevirtv1.Hugepages{PageSize: "2Mi"}},
		"domain.firmware.uuid":                                 {"5d307ca9-b3ef-428c-8861-06e72d69f223"},
		"domain.ioThreads":                                     {kubevirtv1.DiskIOThreads{SupplementalPoolThreadCount: ptr(uint32(4))}},
	}
	return append(own[path], true, false, 3, "2Gi", "x", empty{})
}

// prepare gives the base spec what the field pattern needs to have an
// effect. A volumes[*] field is set on a new volume with its own disk, so
// the base volumes keep their sources.
func prepare(spec *kubevirtv1.VirtualMachineInstanceSpec, pattern string) {
	d := &spec.Domain
	dedicated := func() {
		if d.CPU == nil {
			d.CPU = &kubevirtv1.CPU{}
		}
		d.CPU.DedicatedCPUPlacement = true
	}
	configDrive := func() {
		spec.Volumes[1].VolumeSource = kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{UserData: "#cloud-config\n"}}
	}
	kernelBoot := func() {
		d.Firmware = &kubevirtv1.Firmware{KernelBoot: &kubevirtv1.KernelBoot{Container: &kubevirtv1.KernelBootContainer{Image: "oci:/srv/kernel", KernelPath: "/boot/vmlinuz"}}}
	}
	switch pattern {
	case "hostname":
		// Mapped through cloud-init; without it, it must be warned.
		spec.Volumes = spec.Volumes[:1]
		d.Devices.Disks = d.Devices.Disks[:1]
	case "domain.cpu.isolateEmulatorThread":
		dedicated()
	case "domain.cpu.numa":
		dedicated()
		d.Memory.Hugepages = &kubevirtv1.Hugepages{PageSize: "2Mi"}
	case "domain.memory.reservedOverhead":
		d.Resources.Limits = k8sv1.ResourceList{k8sv1.ResourceMemory: resource.MustParse("2Gi")}
	case "domain.firmware.kernelBoot.kernelArgs", "domain.firmware.kernelBoot.container.image",
		"domain.firmware.kernelBoot.container.kernelPath", "domain.firmware.kernelBoot.container.initrdPath",
		"domain.firmware.kernelBoot.container.imagePullPolicy", "domain.firmware.kernelBoot.container.imagePullSecret":
		kernelBoot()
	case "domain.devices.autoattachInputDevice":
		d.Devices.Inputs = nil
	case "domain.ioThreads":
		policy := kubevirtv1.IOThreadsPolicySupplementalPool
		d.IOThreadsPolicy = &policy
	case "domain.devices.watchdog.name":
		d.Devices.Watchdog = &kubevirtv1.Watchdog{WatchdogDevice: kubevirtv1.WatchdogDevice{I6300ESB: &kubevirtv1.I6300ESBWatchdog{}}}
	case "domain.devices.disks[*].tag", "domain.devices.interfaces[*].tag", "domain.devices.gpus[*].tag", "domain.devices.hostDevices[*].tag":
		configDrive()
	case "domain.devices.interfaces[*].masquerade":
		d.Devices.Interfaces[0].Masquerade = nil
	case "domain.devices.filesystems[*].name", "domain.devices.filesystems[*].virtiofs":
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: "share", VolumeSource: kubevirtv1.VolumeSource{
			PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}})
		d.Devices.Filesystems = []kubevirtv1.Filesystem{{Name: "share"}}
		if pattern == "domain.devices.filesystems[*].name" {
			d.Devices.Filesystems[0].Virtiofs = &kubevirtv1.FilesystemVirtiofs{}
		}
	case "networks[*].pod":
		spec.Networks[0].Pod = nil
	case "networks[*].multus.networkName":
		spec.Networks[0].Pod = nil
		d.Devices.Interfaces[0].InterfaceBindingMethod = kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}
	}
	if strings.HasPrefix(pattern, "volumes[*].") {
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: "extra"})
		if pattern == "volumes[*].name" {
			spec.Volumes[len(spec.Volumes)-1].EmptyDisk = &kubevirtv1.EmptyDiskSource{Capacity: resource.MustParse("1Gi")}
		}
		d.Devices.Disks = append(d.Devices.Disks, kubevirtv1.Disk{Name: "extra",
			DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}})
	}
	// The objects around the field exist in the baseline too: what an
	// empty parent (efi: {}) does is not the field's effect.
	if i := strings.LastIndex(pattern, "."); i > 0 {
		setField(spec, pattern[:i], keep{})
	}
}

// keep creates a field's value if it is unset and leaves it otherwise.
type keep struct{}

// setField sets the field pattern names on spec to v and returns its
// concrete path; false when v does not fit the field. Lists are set on
// their first element, volumes on the one prepare added.
func setField(spec *kubevirtv1.VirtualMachineInstanceSpec, pattern string, v any) (string, bool) {
	segs := strings.Split(pattern, ".")
	cur := reflect.ValueOf(spec).Elem()
	var at []string
	for i, seg := range segs {
		name, list := strings.CutSuffix(seg, "[*]")
		for cur.Kind() == reflect.Pointer {
			if cur.IsNil() {
				cur.Set(reflect.New(cur.Type().Elem()))
			}
			cur = cur.Elem()
		}
		// Inlined structs behind pointers (ClaimRequest) must exist to be set.
		for j := 0; j < cur.NumField(); j++ {
			if sf := cur.Type().Field(j); sf.Anonymous && sf.Type.Kind() == reflect.Pointer && cur.Field(j).IsNil() {
				cur.Field(j).Set(reflect.New(sf.Type.Elem()))
			}
		}
		f, ok := fieldByJSON(cur, name)
		if !ok {
			panic("no field " + seg + " in " + pattern)
		}
		cur = f
		if !list {
			at = append(at, name)
			if i == len(segs)-1 {
				return strings.Join(at, "."), setLeaf(cur, v)
			}
			continue
		}
		if cur.Len() == 0 {
			cur.Set(reflect.Append(cur, reflect.New(cur.Type().Elem()).Elem()))
		}
		idx := 0
		if name == "volumes" {
			idx = cur.Len() - 1
		}
		at = append(at, fmt.Sprintf("%s[%d]", name, idx))
		cur = cur.Index(idx)
		if i == len(segs)-1 {
			return strings.Join(at, "."), setLeaf(cur, v)
		}
	}
	return strings.Join(at, "."), true
}

// setLeaf sets dst to v converted to dst's type.
func setLeaf(dst reflect.Value, v any) bool {
	t := dst.Type()
	if _, ok := v.(keep); ok {
		if t.Kind() == reflect.Pointer && dst.IsNil() {
			dst.Set(reflect.New(t.Elem()))
		}
		return true
	}
	if reflect.TypeOf(v) == t && t.Kind() != reflect.Struct {
		dst.Set(reflect.ValueOf(v))
		return true
	}
	if t == reflect.TypeOf(resource.Quantity{}) || t == reflect.TypeOf(&resource.Quantity{}) {
		s, ok := v.(string)
		if !ok {
			return false
		}
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return false
		}
		if t.Kind() == reflect.Pointer {
			dst.Set(reflect.ValueOf(&q))
		} else {
			dst.Set(reflect.ValueOf(q))
		}
		return true
	}
	if rv := reflect.ValueOf(v); rv.Type() != reflect.TypeOf(empty{}) && rv.Type().Kind() == reflect.Struct {
		// A whole value of the field's type (or the type it points to).
		switch {
		case rv.Type() == t:
			dst.Set(rv)
			return true
		case t.Kind() == reflect.Pointer && rv.Type() == t.Elem():
			p := reflect.New(t.Elem())
			p.Elem().Set(rv)
			dst.Set(p)
			return true
		}
		return false
	}
	if t.Kind() == reflect.Pointer {
		if _, isEmpty := v.(empty); isEmpty && t.Elem().Kind() == reflect.Struct {
			dst.Set(reflect.New(t.Elem()))
			return true
		}
		p := reflect.New(t.Elem())
		if !setLeaf(p.Elem(), v) {
			return false
		}
		dst.Set(p)
		return true
	}
	switch t.Kind() {
	case reflect.String:
		if s, ok := v.(string); ok {
			dst.SetString(s)
			return true
		}
	case reflect.Bool:
		if b, ok := v.(bool); ok {
			dst.SetBool(b)
			return true
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		if n, ok := v.(int); ok {
			dst.SetInt(int64(n))
			return true
		}
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		if n, ok := v.(int); ok {
			dst.SetUint(uint64(n))
			return true
		}
	case reflect.Slice:
		if _, ok := v.(empty); ok {
			dst.Set(reflect.Append(dst, reflect.New(t.Elem()).Elem()))
			return true
		}
		if s, ok := v.(string); ok && t.Elem().Kind() == reflect.String {
			dst.Set(reflect.Append(dst, reflect.ValueOf(s).Convert(t.Elem())))
			return true
		}
	case reflect.Map:
		if s, ok := v.(string); ok && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			dst.Set(reflect.MakeMap(t))
			dst.SetMapIndex(reflect.ValueOf(s).Convert(t.Key()), reflect.ValueOf(s).Convert(t.Elem()))
			return true
		}
	case reflect.Struct:
		if _, ok := v.(empty); ok {
			dst.Set(reflect.Zero(t))
			return true
		}
	}
	return false
}

type converted struct {
	xml, artifacts string
	diags          diag.List
}

// convertWithResources converts in with the node resources the agent would
// bind for it: pinned CPUs for dedicatedCpuPlacement, a device per GPU
// and host device request.
func convertWithResources(in Input) converted {
	if c := in.Spec.Domain.CPU; c != nil && c.DedicatedCPUPlacement {
		p := &Pinning{}
		for i := range VCPUs(in.Spec) {
			p.VCPUs = append(p.VCPUs, uint(i))
		}
		if c.IsolateEmulatorThread {
			p.Emulator = ptr(uint(15))
		}
		in.Resources.Pins = p
	}
	for _, g := range in.Spec.Domain.Devices.GPUs {
		in.Resources.HostDevices = append(in.Resources.HostDevices, AssignedDevice{Name: g.Name, Resource: g.DeviceName, GPU: true, Address: "0000:65:00.0"})
	}
	for _, h := range in.Spec.Domain.Devices.HostDevices {
		in.Resources.HostDevices = append(in.Resources.HostDevices, AssignedDevice{Name: h.Name, Resource: h.DeviceName, Address: "0000:66:00.0"})
	}
	if fw := in.Spec.Domain.Firmware; fw != nil && fw.UUID != "" {
		// The caller's rule (Input.UUID).
		in.UUID = string(fw.UUID)
	}
	res := Convert(in, testContext)
	xml, err := res.Domain.Marshal()
	if err != nil {
		xml = "marshal: " + err.Error()
	}
	return converted{xml: xml, artifacts: string(render(Result{Artifacts: res.Artifacts})), diags: res.Diags}
}
