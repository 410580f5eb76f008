package desired

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// Annotations nodevirt reads from manifests.
const (
	// AnnotationSelfHeal "false" turns drift healing off for one VM; drift is still reported.
	AnnotationSelfHeal = "nodevirt.io/self-heal"
	// AnnotationRestartOnChange "false" keeps a running VM running after its
	// definition changed; the plan then reports that a restart is required.
	AnnotationRestartOnChange = "nodevirt.io/restart-on-change"
	// AnnotationAllowPruneAll "true" on any object of the commit confirms that a
	// commit may delete every VM nodevirt owns on this node.
	AnnotationAllowPruneAll = "nodevirt.io/allow-prune-all"
	// AnnotationReconcile "disabled" suspends the reconciliation of one
	// object (Flux's suspend): its steps are planned and reported, drift
	// included, and never applied. Any other value, or none, is enabled.
	AnnotationReconcile = "nodevirt.io/reconcile"
	// ReconcileDisabled is the AnnotationReconcile value that suspends.
	ReconcileDisabled = "disabled"
	// LabelHostname is the node selector key that pins a VM to one node.
	LabelHostname = "kubernetes.io/hostname"
)

// DefaultGracePeriod is KubeVirt's terminationGracePeriodSeconds default.
const DefaultGracePeriod = 30 * time.Second

// VM is one virtual machine this node should run.
type VM struct {
	Object     string `json:"object"` // "VirtualMachine default/web"
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
	DomainName string `json:"domain"`
	UUID       string `json:"uuid"`
	// XML is the complete domain definition, ownership metadata included.
	XML string `json:"xml"`
	// SpecHash covers the domain XML without metadata plus the artifacts, so
	// any change of what the guest sees changes it.
	SpecHash        string                               `json:"specHash"`
	RunStrategy     kubevirtv1.VirtualMachineRunStrategy `json:"runStrategy"`
	SelfHeal        bool                                 `json:"selfHeal"`
	RestartOnChange bool                                 `json:"restartOnChange"`
	GracePeriod     time.Duration                        `json:"gracePeriod"`
	Artifacts       []domain.Artifact                    `json:"artifacts,omitempty"`
	// Revision is the source revision the VM was rendered from.
	Revision string `json:"revision"`
	// Hugepages the VM needs free on the host before it can start.
	Hugepages *Hugepages `json:"hugepages,omitempty"`
	// Dedicated is set for dedicatedCpuPlacement: Build allocates exclusive
	// host CPUs from the node's pool before conversion (Pins).
	Dedicated *Dedicated `json:"dedicated,omitempty"`
	// HostDevices are the PCI devices the VM asks for by resource name
	// (VM-10); Build allocates them before conversion (Devices).
	HostDevices []DeviceRequest `json:"hostDevices,omitempty"`
	// Volumes are the spec's volume names; Hotpluggable those of them a
	// running VM takes or gives up live (hotpluggable DataVolumes and PVCs).
	Volumes      []string `json:"volumes,omitempty"`
	Hotpluggable []string `json:"hotpluggable,omitempty"`
	// HotplugDisks are the disks of XML a running domain takes or gives up
	// live (hotpluggable on the SCSI bus); SpecHash leaves them out, so
	// adding or removing one is no restart.
	HotplugDisks []domain.HotplugDisk `json:"hotplugDisks,omitempty"`
	// Pins and Devices are the node resources the domain was rendered
	// with; the reconciler persists them when it defines the domain.
	Pins    *domain.Pinning         `json:"pins,omitempty"`
	Devices []domain.AssignedDevice `json:"devices,omitempty"`
	// Unschedulable says why the VM cannot start on this node although it
	// is placed here (no CPU-manager pool, no free CPUs or devices): it is
	// defined without the missing resource and waits.
	Unschedulable string `json:"unschedulable,omitempty"`
	// CPUCheck is the domain's <cpu> element when it names a model or gives
	// feature policies: the host must be able to provide it (VM-9).
	CPUCheck string `json:"cpuCheck,omitempty"`
	// Fenced says why the VM must not start here yet although it is placed
	// here: another node still runs it, or this node is out of service.
	Fenced string `json:"fenced,omitempty"`
}

// DeviceRequest is one hostDevices or gpus entry of a VM.
type DeviceRequest struct {
	Name     string `json:"name"`
	Resource string `json:"resource"`
	GPU      bool   `json:"gpu,omitempty"`
}

// Dedicated is a VM's demand for exclusive host CPUs (VM-8).
type Dedicated struct {
	VCPUs int `json:"vcpus"`
	// EmulatorThread asks for one more exclusive CPU for QEMU's emulator thread.
	EmulatorThread bool `json:"emulatorThread,omitempty"`
}

// Need is how many host CPUs the VM takes from the pool.
func (d Dedicated) Need() int {
	if d.EmulatorThread {
		return d.VCPUs + 1
	}
	return d.VCPUs
}

// Hugepages is a VM's demand for huge pages of one size.
type Hugepages struct {
	PageSizeKiB int64 `json:"pageSizeKiB"`
	Pages       int64 `json:"pages"`
}

// State is the desired state of the node for one source revision.
type State struct {
	Revision string
	// VMs are the valid VirtualMachines placed on this node, sorted by domain name.
	VMs []*VM
	// Invalid holds the domain names of VMs whose manifests failed validation or
	// conversion: the reconciler keeps their last good state and never prunes them.
	Invalid map[string]string // domain name -> object
	Diags   diag.List
	// PruneSuspended is set when some document could not be identified: the
	// objects it held are unknown, so nothing may be deleted for this commit.
	PruneSuspended bool
	// AllowPruneAll is set by the AnnotationAllowPruneAll marker.
	AllowPruneAll bool
	// Elsewhere counts VMs placed on other nodes (not this one).
	Elsewhere int
	// Unschedulable maps the domain names of VMs no node can run to
	// "Kind ns/name: reason" (the scheduler's message, and what this node
	// lacks). A VM already running here keeps running: placement rules
	// apply at scheduling only.
	Unschedulable map[string]string
	// OtherNode maps the domain names of VMs placed on another node to
	// "Kind ns/name: placed on node N".
	OtherNode map[string]string
	// Placement is where every schedulable VM of the fleet is placed, by
	// key: the record the next revision keeps VMs where they are by.
	Placement map[string]Placed
	// OutOfService: this node's Node manifest has the out-of-service
	// taint; its VMs stop and none starts.
	OutOfService bool
	// outside are the digests of the Secrets and ConfigMaps read from
	// Options.Secrets (see SourcesChanged).
	outside map[string]string
}

// Options carry the node identity and host layout into the build.
type Options struct {
	Node string
	// NodeLabels are labels this node has beyond its Node manifest (e.g.
	// cpumanager=true when its CPU-manager pool is on).
	NodeLabels map[string]string
	Context    domain.Context
	// Resources are what the node can give VMs (pool, devices, claims and
	// the allocations persisted in the state).
	Resources Resources
	// Previous is the placement of the last applied commit, by VM key
	// ("namespace/name"): a VM stays on its node while its rules are
	// unchanged and the node takes it. Nil places every VM afresh.
	Previous map[string]Placed
	// Reports are the fleet's status reports; nil: none are read, and no
	// start waits for another node.
	Reports Reports
	// NodeLease is how old a node's report may be and still hold its VMs;
	// 0 means DefaultNodeLease.
	NodeLease time.Duration
	// Now is the clock reports are aged by; nil is time.Now.
	Now func() time.Time
	// Secrets reads the Secrets and ConfigMaps VMs name that the
	// repository does not hold (a repository's copy wins); nil reads
	// only the repository's.
	Secrets SecretReader
	// DiagnosticsOnly converts every VM for its diagnostics but writes no
	// domain XML and no spec hash (validate: nobody reads them, and
	// writing the XML is a fifth of its work). Such a State must not be
	// planned or applied.
	DiagnosticsOnly bool
}

// Build renders the desired state from a manifest set.
func Build(set *manifests.Set, revision string, opt Options) *State {
	st := &State{
		Revision:       revision,
		Invalid:        map[string]string{},
		PruneSuspended: set.Incomplete,
	}
	st.Diags = append(st.Diags, set.Diags...)
	if s := clusterSMBIOS(set); s != nil {
		opt.Context.SMBIOS = s
	}
	st.Unschedulable = map[string]string{}
	st.OtherNode = map[string]string{}
	placed, self, hashes := place(set, opt)
	st.Placement = make(map[string]Placed, len(placed.Node))
	for key, node := range placed.Node {
		st.Placement[key] = Placed{Node: node, Hash: hashes[key]}
	}
	down := outOfServiceNodes(set)
	st.OutOfService = down[opt.Node]
	networks := newNetworkResolver(set)
	sources := newSourceResolver(set, opt.Secrets)
	collided := domainCollisions(set, st)
	// Sized for every object being a VM: a candidate is a few words, and
	// growing the slice copies the large ones for a source of thousands.
	todo := make([]candidate, 0, len(set.Objects))
	var refused map[string][]string // by object, read at the first invalid VM
	for _, o := range set.Objects {
		if o.Annotations[AnnotationAllowPruneAll] == "true" {
			st.AllowPruneAll = true
		}
		if o.Ref.Kind != "VirtualMachine" && o.Ref.Kind != "VirtualMachineInstance" {
			continue
		}
		name := domain.DomainName(o.Ref.Namespace, o.Ref.Name)
		if collided[name] {
			continue
		}
		// Decided by kind, not by the decoded value: an object whose fields
		// failed to decode has no value, and must still keep its last good
		// state instead of looking deleted.
		if o.Value == nil {
			st.Invalid[name] = o.Ref.String()
			continue
		}
		var (
			spec       *kubevirtv1.VirtualMachineInstanceSpec
			meta       map[string]string
			vmiAnn     map[string]string
			vmiAnnPath string
			prefix     string
			rs         kubevirtv1.VirtualMachineRunStrategy
		)
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			if v.Spec.Template != nil {
				spec = &v.Spec.Template.Spec
				vmiAnn, vmiAnnPath = v.Spec.Template.ObjectMeta.Annotations, "spec.template.metadata.annotations"
			}
			prefix = "spec.template.spec"
			meta = o.Annotations
			if s, err := v.RunStrategy(); err == nil {
				rs = s
			}
		case *kubevirtv1.VirtualMachineInstance:
			// A VMI is one run of a VM: started once, never restarted.
			spec, prefix, meta, rs = &v.Spec, "spec", o.Annotations, kubevirtv1.RunStrategyOnce
			vmiAnn, vmiAnnPath = v.Annotations, "metadata.annotations"
		}
		if spec == nil {
			st.Invalid[name] = o.Ref.String()
			continue
		}
		if !o.Valid {
			// Invalid, so it keeps its last good state; its refusals are
			// still reported now rather than after the first errors are
			// fixed.
			st.Invalid[name] = o.Ref.String()
			if refused == nil {
				refused = refusedPaths(set.Diags)
			}
			st.Diags = append(st.Diags, refusals(o, spec, prefix, networks, opt.Context, refused[o.Ref.String()])...)
			continue
		}
		key := o.Ref.Namespace + "/" + o.Ref.Name
		if why, ok := placed.Unschedulable[key]; ok {
			hint := notHere(spec, self)
			if rec, was := opt.Previous[key]; was && rec.Node == opt.Node && rec.Hash != hashes[key] && hint != "" {
				// Its own rules moved it off this node: it leaves, even if
				// this node knows no other that takes it (the one they
				// name need not be described here). Placement rules that
				// did not change keep a VM where it runs; these did. The
				// record stays, so the next revision still knows.
				st.Elsewhere++
				st.OtherNode[name] = o.Ref.String() + ": its placement rules changed and no longer select node " + opt.Node + " (" + hint + ")"
				st.Placement[key] = rec
				continue
			}
			if hint != "" {
				why = strings.TrimSuffix(why, ".") + ". On node " + opt.Node + ": " + hint
			}
			st.Unschedulable[name] = o.Ref.String() + ": " + why
			continue
		}
		if node := placed.Node[key]; node != opt.Node {
			st.Elsewhere++
			st.OtherNode[name] = o.Ref.String() + ": placed on node " + node
			if hint := notHere(spec, self); hint != "" {
				st.OtherNode[name] += " (on node " + opt.Node + ": " + hint + ")"
			}
			continue
		}
		nets, diags := networks.resolve(o, spec, prefix)
		st.Diags = append(st.Diags, diags...)
		if diags.HasErrors() {
			st.Invalid[name] = o.Ref.String()
			continue
		}
		todo = append(todo, candidate{o: o, spec: spec, prefix: prefix, vmiAnn: vmiAnn, vmiAnnPath: vmiAnnPath, rs: rs, meta: meta, nets: nets,
			sources: sources.resolve(o, spec), demand: demandOf(name, spec)})
	}
	// Node resources are decided before conversion, for all VMs at once,
	// so the converter writes them into the domain and nothing edits the
	// domain afterwards.
	want := make([]demand, len(todo))
	for i, c := range todo {
		want[i] = c.demand
	}
	allocs := allocate(opt.Resources, want)
	// Each VM renders on its own (conversion and its XML are most of a
	// build), so they render in parallel and are collected in order.
	var none allocation // what a VM asking for no node resources gets
	type result struct {
		vm    *VM
		diags diag.List
	}
	results := make([]result, len(todo))
	forEach(len(todo), func(i int) {
		c := todo[i]
		alloc := allocs[c.demand.name]
		if alloc == nil {
			alloc = &none
		}
		results[i].vm, results[i].diags = render(c, alloc, revision, opt)
	})
	more := len(networks.diags)
	for _, r := range results {
		more += len(r.diags)
	}
	st.Diags = slices.Grow(st.Diags, more)
	st.VMs = slices.Grow(st.VMs, len(results))
	for i, r := range results {
		c := todo[i]
		st.Diags = append(st.Diags, r.diags...)
		if r.vm == nil {
			st.Invalid[c.demand.name] = c.o.Ref.String()
			continue
		}
		r.vm.Fenced = fence(c.o.Ref.Namespace+"/"+c.o.Ref.Name, down, opt)
		st.VMs = append(st.VMs, r.vm)
	}
	st.Diags = append(st.Diags, networks.diags...)
	st.Diags = append(st.Diags, sources.warnings()...)
	st.outside = sources.read
	sort.Slice(st.VMs, func(i, j int) bool { return st.VMs[i].DomainName < st.VMs[j].DomainName })
	st.Diags.Sort()
	return st
}

// refusals are the diagnostics of an invalid VM that do not depend on its
// errors: unresolved networks, and the fields the converter refuses or
// ignores. The conversion runs on a spec that failed admission, so its
// element-level findings (often the same errors again) are dropped, and so
// are its refusals of a field admission already refused (refused holds the
// paths of the load's errors about o, see refusedPaths), and the domain.
func refusals(o *manifests.Object, spec *kubevirtv1.VirtualMachineInstanceSpec, prefix string, networks *networkResolver, ctx domain.Context, refused []string) diag.List {
	already := func(p string) bool {
		for _, r := range refused {
			if p == r || strings.HasPrefix(p, r+".") || strings.HasPrefix(p, r+"[") {
				return true
			}
		}
		return false
	}
	nets, diags := networks.resolve(o, spec, prefix)
	res := domain.Convert(domain.Input{
		Namespace:  o.Ref.Namespace,
		Name:       o.Ref.Name,
		Spec:       spec,
		Object:     o.Ref.String(),
		PathPrefix: prefix,
		Networks:   nets,
	}, ctx)
	for _, d := range res.Diags {
		if !errors.Is(d, domain.ErrUnsupported) && !errors.Is(d, domain.ErrIgnored) || already(d.Path) {
			continue
		}
		if d.File == "" {
			d.File = o.File
			d.Line, d.Col = o.Pos(d.Path)
		}
		diags = append(diags, d)
	}
	return diags
}

// refusedPaths are the paths of the errors in known, by object: indexed
// once, so the refusals of many invalid VMs do not each scan every
// diagnostic.
func refusedPaths(known diag.List) map[string][]string {
	out := map[string][]string{}
	for _, d := range known {
		if d.Severity == diag.Error && d.Path != "" {
			out[d.Object] = append(out[d.Object], d.Path)
		}
	}
	return out
}

// candidate is a VM placed on this node, waiting for its resources and conversion.
type candidate struct {
	o      *manifests.Object
	spec   *kubevirtv1.VirtualMachineInstanceSpec
	prefix string
	// vmiAnn are the VMI's annotations (a VM's template's) at vmiAnnPath.
	vmiAnn     map[string]string
	vmiAnnPath string
	rs         kubevirtv1.VirtualMachineRunStrategy
	meta       map[string]string
	nets       map[string]domain.NetworkAttachment
	// sources are the Secrets and ConfigMaps the spec names, read.
	sources map[domain.SourceRef]domain.Source
	demand  demand
}

// demandOf is what a VM asks of the node, read from its spec before
// conversion; the vCPU count is the converter's own.
func demandOf(name string, spec *kubevirtv1.VirtualMachineInstanceSpec) demand {
	d := demand{name: name, devices: deviceRequests(spec)}
	if c := spec.Domain.CPU; c != nil && c.DedicatedCPUPlacement {
		d.dedicated = &Dedicated{VCPUs: domain.VCPUs(spec), EmulatorThread: c.IsolateEmulatorThread}
	}
	return d
}

func render(c candidate, alloc *allocation, revision string, opt Options) (*VM, diag.List) {
	o, spec, prefix, rs, ann := c.o, c.spec, c.prefix, c.rs, c.meta
	uuid := string(firmwareUUID(spec))
	if uuid == "" {
		uuid = StableUUID(o.Ref.Namespace, o.Ref.Name)
	}
	labels := templateLabels(o)
	res := domain.Convert(domain.Input{
		Namespace:  o.Ref.Namespace,
		Name:       o.Ref.Name,
		UUID:       uuid,
		Spec:       spec,
		Object:     o.Ref.String(),
		PathPrefix: prefix,
		Networks:   c.nets,
		// KubeVirt copies a VM's template annotations to its VMI.
		Annotations:     c.vmiAnn,
		AnnotationsPath: c.vmiAnnPath,
		Resources: domain.Resources{
			Pins:        alloc.pins,
			HostDevices: alloc.devices,
			Claims:      opt.Resources.claimsFor(o.Ref.Namespace, spec),
		},
		Sources: c.sources,
		Labels:  labels,
	}, opt.Context)
	// Conversion diagnostics carry the user's path; give them file and line.
	diags := make(diag.List, 0, len(res.Diags))
	for _, d := range res.Diags {
		if d.File == "" {
			d.File = o.File
			d.Line, d.Col = o.Pos(d.Path)
		}
		diags = append(diags, d)
	}
	if diags.HasErrors() || res.Domain == nil {
		return nil, diags
	}
	var xml, hash string
	if !opt.DiagnosticsOnly {
		owner := Owner{Kind: o.Ref.Kind, Namespace: o.Ref.Namespace, Name: o.Ref.Name, Revision: revision}
		var err error
		if xml, hash, err = seal(res.Domain, res.Artifacts, res.Hotplug, owner); err != nil {
			return nil, append(diags, o.Errorf(prefix, "rendering domain XML: %v", err))
		}
	}
	cpuCheck := ""
	if c := res.Domain.CPU; c != nil && (c.Mode == "custom" || (c.Model != nil && c.Model.Value != "") || len(c.Features) > 0) {
		var err error
		if cpuCheck, err = c.Marshal(); err != nil {
			return nil, append(diags, o.Errorf(prefix+".domain.cpu", "rendering CPU: %v", err))
		}
	}
	var huge *Hugepages
	if size, pages, ok := domain.HugepagesNeeded(spec); ok {
		huge = &Hugepages{PageSizeKiB: size, Pages: pages}
	}
	grace := DefaultGracePeriod
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	return &VM{
		Object:          o.Ref.String(),
		Kind:            o.Ref.Kind,
		Namespace:       o.Ref.Namespace,
		Name:            o.Ref.Name,
		File:            o.File,
		Line:            o.Line,
		DomainName:      res.Domain.Name,
		UUID:            uuid,
		XML:             xml,
		SpecHash:        hash,
		RunStrategy:     rs,
		SelfHeal:        ann[AnnotationSelfHeal] != "false",
		RestartOnChange: ann[AnnotationRestartOnChange] != "false",
		GracePeriod:     grace,
		Artifacts:       res.Artifacts,
		Revision:        revision,
		Hugepages:       huge,
		CPUCheck:        cpuCheck,
		Dedicated:       c.demand.dedicated,
		HostDevices:     c.demand.devices,
		Pins:            alloc.pins,
		Devices:         alloc.devices,
		Unschedulable:   alloc.why,
		Volumes:         volumeNames(spec, false),
		Hotpluggable:    volumeNames(spec, true),
		HotplugDisks:    res.Hotplug,
	}, diags
}

// volumeNames lists spec's volumes, or only its hotpluggable DataVolume and
// PVC ones.
func volumeNames(spec *kubevirtv1.VirtualMachineInstanceSpec, hotpluggable bool) []string {
	var out []string
	for _, v := range spec.Volumes {
		hp := (v.DataVolume != nil && v.DataVolume.Hotpluggable) ||
			(v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.Hotpluggable)
		if !hotpluggable || hp {
			out = append(out, v.Name)
		}
	}
	return out
}

func firmwareUUID(spec *kubevirtv1.VirtualMachineInstanceSpec) string {
	if spec.Domain.Firmware != nil {
		return string(spec.Domain.Firmware.UUID)
	}
	return ""
}

// ErrDomainCollision marks objects that would be one libvirt domain.
var ErrDomainCollision = errors.New("maps to the same libvirt domain as another object")

// domainCollisions finds VMs and VMIs that map to one domain name: a VM and a
// VMI of the same namespace and name, or names that only validation keeps
// apart. Defining either would redefine the other's domain on every pass, so
// neither is defined: each gets an error naming the other, and the domain
// keeps its last good state (Invalid), as for any invalid object.
func domainCollisions(set *manifests.Set, st *State) map[string]bool {
	by := make(map[string][]*manifests.Object, len(set.Objects))
	var order []string
	for _, o := range set.Objects {
		if o.Ref.Kind != "VirtualMachine" && o.Ref.Kind != "VirtualMachineInstance" {
			continue
		}
		name := domain.DomainName(o.Ref.Namespace, o.Ref.Name)
		if by[name] == nil {
			order = append(order, name)
		}
		by[name] = append(by[name], o)
	}
	out := map[string]bool{}
	for _, name := range order {
		objs := by[name]
		if len(objs) < 2 {
			continue
		}
		out[name] = true
		refs := make([]string, len(objs))
		for i, o := range objs {
			refs[i] = fmt.Sprintf("%s (%s:%d)", o.Ref, o.File, o.Line)
		}
		st.Invalid[name] = strings.Join(refs, ", ")
		for i, o := range objs {
			others := append(append([]string{}, refs[:i]...), refs[i+1:]...)
			st.Diags = append(st.Diags, o.Errorf("metadata.name", "%w %q: %s; rename one of them",
				ErrDomainCollision, name, strings.Join(others, ", ")))
		}
	}
	return out
}

// Lookup returns the VM rendered for a domain name, or nil.
func (s *State) Lookup(domainName string) *VM {
	i := sort.Search(len(s.VMs), func(i int) bool { return s.VMs[i].DomainName >= domainName })
	if i < len(s.VMs) && s.VMs[i].DomainName == domainName {
		return s.VMs[i]
	}
	return nil
}

// String is a one-line summary for logs.
func (s *State) String() string {
	return fmt.Sprintf("revision %s: %d VMs on this node, %d invalid, %d elsewhere", s.Revision, len(s.VMs), len(s.Invalid), s.Elsewhere)
}

func deviceRequests(spec *kubevirtv1.VirtualMachineInstanceSpec) []DeviceRequest {
	var out []DeviceRequest
	for _, g := range spec.Domain.Devices.GPUs {
		out = append(out, DeviceRequest{Name: g.Name, Resource: g.DeviceName, GPU: true})
	}
	for _, h := range spec.Domain.Devices.HostDevices {
		out = append(out, DeviceRequest{Name: h.Name, Resource: h.DeviceName})
	}
	return out
}

// clusterSMBIOS is the KubeVirt CR's spec.configuration.smbios, the system
// information KubeVirt gives every guest; nil leaves KubeVirt's default.
// With several KubeVirt objects (a cluster has one) the first valid one
// in source order counts.
func clusterSMBIOS(set *manifests.Set) *domain.SMBIOS {
	for _, o := range set.Objects {
		kv, ok := o.Value.(*manifests.KubeVirt)
		if !ok || !o.Valid || kv.Spec.Configuration.SMBIOSConfig == nil {
			continue
		}
		c := kv.Spec.Configuration.SMBIOSConfig
		return &domain.SMBIOS{Manufacturer: c.Manufacturer, Product: c.Product, Version: c.Version, SKU: c.Sku, Family: c.Family}
	}
	return nil
}
