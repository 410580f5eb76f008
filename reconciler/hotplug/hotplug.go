package hotplug

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// DetachTimeout is how long a detach waits for the guest to release the
// device before it gives up.
const DetachTimeout = 60 * time.Second

// maxName is KubeVirt's limit on a hot-plugged volume's name.
const maxName = 63

// Errors callers tell apart (errors.Is).
var (
	// ErrInvalid: the request itself is wrong (a name, a source, a bus).
	ErrInvalid = errors.New("invalid hotplug request")
	// ErrNotRunning: hotplug needs a running VM.
	ErrNotRunning = errors.New("VM is not running")
	// ErrUnknownClaim: the DataVolume or PVC is not in the source.
	ErrUnknownClaim = errors.New("not in the source")
	// ErrClaimNotReady: the claim's data is not complete yet.
	ErrClaimNotReady = errors.New("not ready")
)

// refusal is a request refused with upstream's words, matching its kind.
type refusal struct {
	msg  string
	kind error
}

func (r refusal) Error() string { return r.msg }
func (r refusal) Unwrap() error { return r.kind }

// invalidf is an ErrInvalid whose text is the message alone, as virtctl
// prints it.
func invalidf(format string, args ...any) error {
	return refusal{fmt.Sprintf(format, args...), ErrInvalid}
}

// Hypervisor is the part of the libvirt driver hotplug needs.
type Hypervisor interface {
	AttachDevice(ctx context.Context, name, deviceXML string, persist bool) error
	DetachDevice(ctx context.Context, name, alias string, persist bool, timeout time.Duration) error
	// LiveDomain is the running domain's live XML; nil when it is not running.
	LiveDomain(ctx context.Context, name string) (*libvirtxml.Domain, error)
}

// ClaimDisk is where a claim's data is and whether a VM may use it.
type ClaimDisk struct {
	Path  string
	Block bool
	Ready bool
	Phase string
	// DataVolume: the source holds a DataVolume of that name, not a bare PVC.
	DataVolume bool
}

// Claims finds the disks of the source's DataVolumes and PVCs.
type Claims interface {
	ClaimDisk(namespace, name string) (ClaimDisk, bool)
}

// Manager attaches and detaches volumes and keeps their records.
type Manager struct {
	hv      Hypervisor
	claims  Claims
	rec     store
	now     func() time.Time
	timeout time.Duration

	// detaching holds "domain/volume" while a detach waits for the guest,
	// so status shows the volume as Detaching.
	mu        sync.Mutex
	detaching map[string]bool
}

// New returns a manager over the hypervisor, the claims and the state store.
func New(h Hypervisor, c Claims, kv KV) *Manager {
	return &Manager{hv: h, claims: c, rec: store{kv}, now: time.Now, timeout: DetachTimeout, detaching: map[string]bool{}}
}

// WithDetachTimeout sets how long a detach waits for the guest.
func (m *Manager) WithDetachTimeout(d time.Duration) *Manager { m.timeout = d; return m }

// Result is what an add or remove did, and the change of the VM's spec to
// commit for it to last, as YAML ("" when there is none).
type Result struct {
	Changed bool
	Message string
	Patch   string
}

// Add attaches the DataVolume or PVC opts names to the running VM vm on its
// SCSI controller, as virtctl addvolume does. persist keeps it across boots
// until the source holds it, and returns the spec change to commit.
func (m *Manager) Add(ctx context.Context, vm *desired.VM, opts kubevirtv1.AddVolumeOptions, persist bool) (Result, error) {
	rec, err := validateAdd(opts)
	if err != nil {
		return Result{}, err
	}
	rec.Persist = persist
	recs, err := m.rec.get(vm.DomainName)
	if err != nil {
		return Result{}, err
	}
	exists := invalidf("Unable to add volume [%s] because volume with that name already exists", rec.Volume)
	if slices.Contains(vm.Volumes, rec.Volume) {
		return Result{}, exists
	}
	for _, r := range recs {
		if r.Volume == rec.Volume {
			return Result{}, exists
		}
	}
	disk, ok := m.claims.ClaimDisk(vm.Namespace, rec.Claim)
	if ok {
		// As virtctl, which looks the name up: the source's kind wins.
		rec.Source = "persistentVolumeClaim"
		if disk.DataVolume {
			rec.Source = "dataVolume"
		}
	}
	kind := sourceKind(rec.Source)
	if !ok {
		return Result{}, fmt.Errorf("%s %s/%s is %w: only DataVolumes and PVCs of the source can be hot-plugged", kind, vm.Namespace, rec.Claim, ErrUnknownClaim)
	}
	if !disk.Ready {
		return Result{}, fmt.Errorf("%s %s/%s is %w (phase %s): its data is not complete", kind, vm.Namespace, rec.Claim, ErrClaimNotReady, disk.Phase)
	}
	if rec.DiskType == "lun" && !disk.Block {
		return Result{}, invalidf("disk type lun needs a Block volume; %s %s/%s is a file", kind, vm.Namespace, rec.Claim)
	}
	live, err := m.hv.LiveDomain(ctx, vm.DomainName)
	if err != nil {
		return Result{}, err
	}
	if live == nil {
		return Result{}, fmt.Errorf("%s: %w; start it before adding a volume", vm.Object, ErrNotRunning)
	}
	for _, d := range liveDisks(live) {
		if src := diskSource(d); src == disk.Path {
			return Result{}, invalidf("Unable to add volume source [%s] because it already exists", rec.Claim)
		}
	}
	rec.Target = freeTarget(live)
	x, err := diskXML(rec, disk)
	if err != nil {
		return Result{}, err
	}
	// Live only, with or without persist: the persistent definition stays
	// the source's, and a persisted volume is attached again at each boot
	// until a commit holds it.
	if err := m.hv.AttachDevice(ctx, vm.DomainName, x, false); err != nil {
		return Result{}, fmt.Errorf("attach volume %s to %s: %w", rec.Volume, vm.Object, err)
	}
	rec.Time = m.now().UTC()
	if live.ID != nil {
		rec.Boot = *live.ID
	}
	if err := m.rec.put(vm.DomainName, append(recs, rec)); err != nil {
		return Result{}, fmt.Errorf("record volume %s of %s: %w", rec.Volume, vm.Object, err)
	}
	res := Result{Changed: true, Message: fmt.Sprintf("volume %s attached as %s; it is gone at the VM's next restart", rec.Volume, rec.Target)}
	if persist {
		res.Message = fmt.Sprintf("volume %s attached as %s; commit the change below to keep it: until then it is attached again at every boot", rec.Volume, rec.Target)
		if res.Patch, err = addPatch(vm, rec); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Remove detaches volume name from the running VM vm, as virtctl
// removevolume does, once the guest released it. A volume the source
// declares hotpluggable stays detached until a commit drops it; the change
// to commit is returned.
func (m *Manager) Remove(ctx context.Context, vm *desired.VM, name string, persist bool) (Result, error) {
	if name == "" {
		return Result{}, invalidf("a volume name is required")
	}
	recs, err := m.rec.get(vm.DomainName)
	if err != nil {
		return Result{}, err
	}
	i := slices.IndexFunc(recs, func(r Record) bool { return r.Volume == name })
	declared := slices.Contains(vm.Volumes, name)
	switch {
	case i >= 0 && recs[i].Detached:
		return Result{Message: fmt.Sprintf("volume %s is detached already; commit its removal from the source", name)}, nil
	case i < 0 && !declared:
		return Result{}, invalidf("Unable to remove volume [%s] because it does not exist", name)
	case i < 0 && !slices.Contains(vm.Hotpluggable, name):
		return Result{}, invalidf("Unable to remove volume [%s] because it is not hotpluggable", name)
	}
	live, err := m.hv.LiveDomain(ctx, vm.DomainName)
	if err != nil {
		return Result{}, err
	}
	if live == nil {
		return Result{}, fmt.Errorf("%s: %w; a stopped VM's volumes change in the source", vm.Object, ErrNotRunning)
	}
	if err := m.detach(ctx, vm.DomainName, name); err != nil {
		return Result{}, fmt.Errorf("detach volume %s from %s: %w", name, vm.Object, err)
	}
	if i >= 0 {
		recs = slices.Delete(recs, i, i+1)
		if err := m.rec.put(vm.DomainName, recs); err != nil {
			return Result{}, err
		}
		return Result{Changed: true, Message: fmt.Sprintf("volume %s detached", name)}, nil
	}
	// Declared in the source: the definition still holds it, so it is
	// kept detached (also after a restart) until the source drops it.
	rec := Record{Volume: name, Detached: true, Persist: persist, Time: m.now().UTC()}
	if live.ID != nil {
		rec.Boot = *live.ID
	}
	if err := m.rec.put(vm.DomainName, append(recs, rec)); err != nil {
		return Result{}, err
	}
	patch, err := removePatch(vm, name)
	return Result{Changed: true, Patch: patch,
		Message: fmt.Sprintf("volume %s detached; commit its removal from the source: until then it is kept detached", name)}, err
}

func (m *Manager) detach(ctx context.Context, domain, volume string) error {
	key := domain + "/" + volume
	m.mu.Lock()
	m.detaching[key] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.detaching, key)
		m.mu.Unlock()
	}()
	return m.hv.DetachDevice(ctx, domain, "ua-"+volume, false, m.timeout)
}

// Sync keeps the records true to the VMs, once per reconcile: a volume
// added without persist is forgotten when its VM stopped or booted again; a
// persisted one is attached again after a boot; a removed one declared in
// the source is detached again; and a record whose change the source now
// holds is dropped (the source owns the volume then). vms are the source's
// VMs by domain name; records of other domains last while they run.
func (m *Manager) Sync(ctx context.Context, vms map[string]*desired.VM) error {
	all, err := m.rec.all()
	if err != nil {
		return err
	}
	var errs []error
	for domain, recs := range all {
		live, err := m.hv.LiveDomain(ctx, domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vm := vms[domain]
		if vm == nil {
			// Not rendered (an invalid manifest keeps its last state): the
			// records last as long as the domain runs.
			if live == nil {
				errs = append(errs, m.rec.put(domain, nil))
			}
			continue
		}
		keep := recs[:0:0]
		for _, r := range recs {
			ok, err := m.sync(ctx, vm, live, &r)
			errs = append(errs, err)
			if ok {
				keep = append(keep, r)
			}
		}
		errs = append(errs, m.rec.put(domain, keep))
	}
	return errors.Join(errs...)
}

// sync settles one record; false drops it.
func (m *Manager) sync(ctx context.Context, vm *desired.VM, live *libvirtxml.Domain, r *Record) (bool, error) {
	declared := slices.Contains(vm.Volumes, r.Volume)
	switch {
	case r.Detached:
		if !declared {
			return false, nil
		}
		if live == nil || !hasAlias(live, "ua-"+r.Volume) {
			return true, nil
		}
		return true, m.detach(ctx, vm.DomainName, r.Volume)
	case declared:
		return false, nil
	case !r.Persist && (live == nil || live.ID == nil || *live.ID != r.Boot):
		return false, nil
	case live == nil, hasAlias(live, "ua-"+r.Volume):
		return true, nil
	}
	// A persisted volume after a boot: attach it again.
	disk, ok := m.claims.ClaimDisk(vm.Namespace, r.Claim)
	if !ok || !disk.Ready {
		return true, fmt.Errorf("volume %s of %s: claim %s is not ready to attach again", r.Volume, vm.Object, r.Claim)
	}
	r.Target = freeTarget(live)
	x, err := diskXML(*r, disk)
	if err != nil {
		return true, err
	}
	if err := m.hv.AttachDevice(ctx, vm.DomainName, x, false); err != nil {
		return true, fmt.Errorf("attach volume %s to %s again: %w", r.Volume, vm.Object, err)
	}
	if live.ID != nil {
		r.Boot = *live.ID
	}
	return true, nil
}

// HotPlugged returns, by domain, the volumes attached by hand that the
// source does not hold.
func (m *Manager) HotPlugged() (map[string][]string, error) {
	all, err := m.rec.all()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for domain, recs := range all {
		for _, r := range recs {
			if !r.Detached {
				out[domain] = append(out[domain], r.Volume)
			}
		}
	}
	return out, nil
}

// Detached lists the volumes of domain the source declares that were
// detached by hand and are kept detached.
func (m *Manager) Detached(domain string) []string {
	recs, _ := m.rec.get(domain)
	var out []string
	for _, r := range recs {
		if r.Detached {
			out = append(out, r.Volume)
		}
	}
	return out
}

// VolumeStatus returns the hot-plugged volumes of domain as KubeVirt's
// vmi.status.volumeStatus shows them.
func (m *Manager) VolumeStatus(domain string) []kubevirtv1.VolumeStatus {
	recs, err := m.rec.get(domain)
	if err != nil {
		return nil
	}
	var out []kubevirtv1.VolumeStatus
	for _, r := range recs {
		if r.Detached {
			continue
		}
		phase := kubevirtv1.VolumeReady
		m.mu.Lock()
		if m.detaching[domain+"/"+r.Volume] {
			phase = kubevirtv1.HotplugVolumeDetaching
		}
		m.mu.Unlock()
		out = append(out, kubevirtv1.VolumeStatus{Name: r.Volume, Target: r.Target, Phase: phase,
			HotplugVolume: &kubevirtv1.HotplugVolumeStatus{}, Message: "hot-plugged, not in the source"})
	}
	return out
}

func validateAdd(o kubevirtv1.AddVolumeOptions) (Record, error) {
	bad := func(format string, args ...any) (Record, error) {
		return Record{}, invalidf(format, args...)
	}
	if o.Name == "" {
		return bad("a volume name is required")
	}
	if len(o.Name) > maxName {
		return bad("volume name %q is longer than %d characters", o.Name, maxName)
	}
	if strings.ContainsAny(o.Name, "/_ ") {
		return bad("volume name %q must be a DNS label (lowercase letters, digits, '-')", o.Name)
	}
	r := Record{Volume: o.Name, DiskType: "disk"}
	switch s := o.VolumeSource; {
	case s == nil || (s.DataVolume == nil) == (s.PersistentVolumeClaim == nil):
		return bad("volume %s needs exactly one source: a dataVolume or a persistentVolumeClaim", o.Name)
	case s.DataVolume != nil:
		r.Source, r.Claim = "dataVolume", s.DataVolume.Name
	default:
		r.Source, r.Claim = "persistentVolumeClaim", s.PersistentVolumeClaim.ClaimName
	}
	if r.Claim == "" {
		return bad("volume %s: the %s has no name", o.Name, sourceKind(r.Source))
	}
	if d := o.Disk; d != nil {
		if d.Name != "" && d.Name != o.Name {
			return bad("disk name %q must be the volume's name %q", d.Name, o.Name)
		}
		r.Serial, r.Cache = d.Serial, string(d.Cache)
		var bus kubevirtv1.DiskBus
		switch {
		case d.LUN != nil:
			r.DiskType, bus = "lun", d.LUN.Bus
		case d.Disk != nil:
			bus = d.Disk.Bus
		case d.CDRom != nil:
			return bad("volume %s: a cdrom cannot be hot-plugged", o.Name)
		}
		if bus != "" && bus != kubevirtv1.DiskBusSCSI {
			return bad("volume %s: bus %s; hot-plugged disks use scsi, which a guest releases at once", o.Name, bus)
		}
		switch r.Cache {
		case "", string(kubevirtv1.CacheNone), string(kubevirtv1.CacheWriteThrough), string(kubevirtv1.CacheWriteBack):
		default:
			return bad("volume %s: cache %q is not one of none, writethrough, writeback", o.Name, r.Cache)
		}
	}
	if r.Serial == "" {
		r.Serial = o.Name
	}
	return r, nil
}

func sourceKind(source string) string {
	if source == "dataVolume" {
		return "DataVolume"
	}
	return "PersistentVolumeClaim"
}

// diskXML is the <disk> for a record on SCSI controller 0; libvirt derives
// the drive address (unit) from the target name.
func diskXML(r Record, c ClaimDisk) (string, error) {
	d := libvirtxml.DomainDisk{
		Device: r.DiskType,
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: r.Cache, ErrorPolicy: string(kubevirtv1.DiskErrorPolicyStop)},
		Target: &libvirtxml.DomainDiskTarget{Dev: r.Target, Bus: string(kubevirtv1.DiskBusSCSI)},
		Serial: r.Serial,
		Alias:  &libvirtxml.DomainAlias{Name: "ua-" + r.Volume},
	}
	if r.DiskType == "disk" {
		d.Driver.Discard = "unmap"
	}
	if c.Block {
		d.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: c.Path}}
	} else {
		d.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: c.Path}}
	}
	x, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("disk XML of volume %s: %w", r.Volume, err)
	}
	return x, nil
}

func liveDisks(live *libvirtxml.Domain) []libvirtxml.DomainDisk {
	if live == nil || live.Devices == nil {
		return nil
	}
	return live.Devices.Disks
}

func hasAlias(live *libvirtxml.Domain, alias string) bool {
	for _, d := range liveDisks(live) {
		if d.Alias != nil && d.Alias.Name == alias {
			return true
		}
	}
	return false
}

func diskSource(d libvirtxml.DomainDisk) string {
	switch s := d.Source; {
	case s == nil:
	case s.File != nil:
		return s.File.File
	case s.Block != nil:
		return s.Block.Dev
	}
	return ""
}

// freeTarget is the first sdX name no live disk uses: sata, scsi and usb
// disks share the sd names.
func freeTarget(live *libvirtxml.Domain) string {
	used := map[string]bool{}
	for _, d := range liveDisks(live) {
		if d.Target != nil {
			used[d.Target.Dev] = true
		}
	}
	for n := 0; ; n++ {
		if t := "sd" + suffix(n); !used[t] {
			return t
		}
	}
}

// suffix is the letter part of a device name: 0→a, 25→z, 26→aa.
func suffix(n int) string {
	s := ""
	for n++; n > 0; n = (n - 1) / 26 {
		s = string(rune('a'+(n-1)%26)) + s
	}
	return s
}

// addPatch is the change of vm's spec that makes a hot-plugged volume part
// of the source, as YAML to merge into the VM's manifest.
func addPatch(vm *desired.VM, r Record) (string, error) {
	disk := kubevirtv1.Disk{Name: r.Volume, Serial: r.Serial, Cache: kubevirtv1.DriverCache(r.Cache)}
	if r.DiskType == "lun" {
		disk.LUN = &kubevirtv1.LunTarget{Bus: kubevirtv1.DiskBusSCSI}
	} else {
		disk.Disk = &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusSCSI}
	}
	vol := kubevirtv1.Volume{Name: r.Volume}
	if r.Source == "dataVolume" {
		vol.DataVolume = &kubevirtv1.DataVolumeSource{Name: r.Claim, Hotpluggable: true}
	} else {
		vol.PersistentVolumeClaim = &kubevirtv1.PersistentVolumeClaimVolumeSource{Hotpluggable: true}
		vol.PersistentVolumeClaim.ClaimName = r.Claim
	}
	return patchYAML(vm, fmt.Sprintf("# %s: add to %s's lists", vm.File, vm.Object), disk, vol)
}

// removePatch names the entries to delete from vm's spec.
func removePatch(vm *desired.VM, volume string) (string, error) {
	return patchYAML(vm, fmt.Sprintf("# %s: remove from %s's lists", vm.File, vm.Object),
		kubevirtv1.Disk{Name: volume}, kubevirtv1.Volume{Name: volume})
}

func patchYAML(vm *desired.VM, head string, disk kubevirtv1.Disk, vol kubevirtv1.Volume) (string, error) {
	spec := map[string]any{
		"domain":  map[string]any{"devices": map[string]any{"disks": []kubevirtv1.Disk{disk}}},
		"volumes": []kubevirtv1.Volume{vol},
	}
	if vm.Kind == "VirtualMachine" {
		spec = map[string]any{"template": map[string]any{"spec": spec}}
	}
	b, err := yaml.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return "", fmt.Errorf("spec change of %s: %w", vm.Object, err)
	}
	return head + "\n" + string(b), nil
}
