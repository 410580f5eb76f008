package manifests

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// validator collects every problem of one object (SPEC M-2: all at once).
type validator struct {
	o     *Object
	diags diag.List
}

// fail reports rule at path. The rule's sentinel holds the message, so each
// rule's text lives in one place (errors.go).
func (v *validator) fail(path string, rule error) {
	v.diags = append(v.diags, v.o.Errorf(path, "%w", rule))
}

// failf reports rule at path with details (the offending value) after its text.
func (v *validator) failf(path string, rule error, format string, args ...any) {
	v.diags = append(v.diags, v.o.Errorf(path, "%w: "+format, append([]any{rule}, args...)...))
}

// validateVM checks a (defaulted) VirtualMachine (KubeVirt vms-admitter).
// unexpanded is set for a VM whose instancetype or preference could not be
// applied: its template may lack what they would give it (memory, CPUs), so
// the rules about those are skipped; the expansion error already makes the
// VM invalid.
func validateVM(o *Object, vm *kubevirtv1.VirtualMachine, unexpanded bool) diag.List {
	v := &validator{o: o}
	switch {
	case vm.Spec.Running != nil && vm.Spec.RunStrategy != nil:
		v.fail("spec.running", ErrRunStrategyConflict)
	case vm.Spec.Running == nil && vm.Spec.RunStrategy == nil:
		v.fail("spec.runStrategy", ErrRunStrategyRequired)
	case vm.Spec.RunStrategy != nil && !validRunStrategy(*vm.Spec.RunStrategy):
		v.failf("spec.runStrategy", ErrRunStrategyInvalid, "got %q", *vm.Spec.RunStrategy)
	}
	if vm.Spec.Template == nil {
		v.fail("spec.template", ErrTemplateRequired)
		return v.diags
	}
	v.spec(&vm.Spec.Template.Spec, "spec.template.spec", unexpanded)
	v.dataVolumeTemplates(vm)
	return v.diags
}

// dataVolumeTemplates checks KubeVirt's rules for a VM's DataVolumes: each
// is in the VM's namespace and used by one of its volumes (an unused one
// would be imported for nothing). A template without a name is the storage
// rules' error.
func (v *validator) dataVolumeTemplates(vm *kubevirtv1.VirtualMachine) {
	used := map[string]bool{}
	for _, vol := range vm.Spec.Template.Spec.Volumes {
		switch {
		case vol.DataVolume != nil:
			used[vol.DataVolume.Name] = true
		case vol.PersistentVolumeClaim != nil:
			used[vol.PersistentVolumeClaim.ClaimName] = true
		}
	}
	for i, t := range vm.Spec.DataVolumeTemplates {
		tp := joinIndex("spec.dataVolumeTemplates", i)
		if t.Namespace != "" && t.Namespace != v.o.Ref.Namespace {
			v.failf(tp+".metadata.namespace", ErrDataVolumeTemplateNamespace, "%q, the VM's is %q", t.Namespace, v.o.Ref.Namespace)
		}
		if t.Name != "" && !used[t.Name] {
			v.failf(tp, ErrDataVolumeTemplateUnused, "%q", t.Name)
		}
	}
}

func validateVMI(o *Object, vmi *kubevirtv1.VirtualMachineInstance) diag.List {
	v := &validator{o: o}
	v.spec(&vmi.Spec, "spec", false)
	return v.diags
}

// spec checks a VMI spec; p is where it sits in the user's document.
func (v *validator) spec(spec *kubevirtv1.VirtualMachineInstanceSpec, p string, fromInstancetype bool) {
	v.memory(spec, p, fromInstancetype)
	v.cpu(spec, p)
	v.firmware(spec, p)
	v.disks(spec, p)
	v.volumes(spec, p)
	v.networks(spec, p)
	v.bootOrder(spec, p)
	v.hyperv(spec, p)
	v.clock(spec, p)
	v.devices(spec, p)
	v.lifecycle(spec, p)
	v.dnsNames(spec, p)
	v.ioThreads(spec, p)
}

// ioThreads checks ioThreadsPolicy as KubeVirt's validateIOThreadsPolicy.
func (v *validator) ioThreads(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	pol := spec.Domain.IOThreadsPolicy
	if pol == nil {
		return
	}
	switch *pol {
	case kubevirtv1.IOThreadsPolicyShared, kubevirtv1.IOThreadsPolicyAuto:
	case kubevirtv1.IOThreadsPolicySupplementalPool:
		if t := spec.Domain.IOThreads; t == nil || t.SupplementalPoolThreadCount == nil || *t.SupplementalPoolThreadCount < 1 {
			v.fail(p+".domain.ioThreads.supplementalPoolThreadCount", ErrIOThreadsPoolCount)
		}
	default:
		v.failf(p+".domain.ioThreadsPolicy", ErrIOThreadsPolicy, "got %q", *pol)
	}
}

// dnsNames checks hostname and subdomain as KubeVirt does: the guest's host
// name is a DNS label, its subdomain a DNS subdomain.
func (v *validator) dnsNames(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	if h := spec.Hostname; h != "" {
		if errs := validation.IsDNS1123Label(h); len(errs) > 0 {
			v.failf(p+".hostname", ErrHostname, "%q: %s", h, strings.Join(errs, "; "))
		}
	}
	if d := spec.Subdomain; d != "" {
		if errs := validation.IsDNS1123Subdomain(d); len(errs) > 0 {
			v.failf(p+".subdomain", ErrSubdomain, "%q: %s", d, strings.Join(errs, "; "))
		}
	}
}

// devices checks the single devices: watchdog, sound and panic devices.
func (v *validator) devices(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	dp := p + ".domain.devices"
	devs := spec.Domain.Devices
	if wd := devs.Watchdog; wd != nil && wd.I6300ESB != nil {
		switch wd.I6300ESB.Action {
		case kubevirtv1.WatchdogActionPoweroff, kubevirtv1.WatchdogActionReset, kubevirtv1.WatchdogActionShutdown:
		default:
			v.failf(dp+".watchdog.i6300esb.action", ErrWatchdogAction, "got %q", wd.I6300ESB.Action)
		}
	}
	if s := devs.Sound; s != nil {
		if s.Name == "" {
			v.fail(dp+".sound.name", ErrSoundName)
		}
		switch s.Model {
		case "", "ich9", "ac97":
		default:
			v.failf(dp+".sound.model", ErrSoundModel, "got %q", s.Model)
		}
	}
	seen := map[kubevirtv1.PanicDeviceModel]bool{}
	for i, pd := range devs.PanicDevices {
		// No model is libvirt's default, the ISA device on x86_64.
		model := kubevirtv1.Isa
		if pd.Model != nil {
			model = *pd.Model
		}
		switch model {
		case kubevirtv1.Hyperv, kubevirtv1.Isa, kubevirtv1.Pvpanic:
		default:
			v.failf(joinIndex(dp+".panicDevices", i)+".model", ErrPanicModel, "got %q", model)
			continue
		}
		// libvirt refuses a second device of one model at define.
		if seen[model] {
			v.failf(joinIndex(dp+".panicDevices", i), ErrPanicDuplicate, "a second %s device (no model means isa)", model)
		}
		seen[model] = true
	}
}

// lifecycle checks startStrategy and probes.
func (v *validator) lifecycle(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	if ss := spec.StartStrategy; ss != nil {
		switch {
		case *ss != kubevirtv1.StartStrategyPaused:
			v.failf(p+".startStrategy", ErrStartStrategy, "got %q", *ss)
		case spec.LivenessProbe != nil:
			v.fail(p+".startStrategy", ErrPausedLiveness)
		}
	}
	pod := false
	for _, n := range spec.Networks {
		pod = pod || n.Pod != nil
	}
	for _, pr := range []struct {
		name  string
		probe *kubevirtv1.Probe
	}{{"readinessProbe", spec.ReadinessProbe}, {"livenessProbe", spec.LivenessProbe}} {
		if pr.probe == nil {
			continue
		}
		h := pr.probe.Handler
		if n := count(h.HTTPGet != nil, h.TCPSocket != nil, h.Exec != nil, h.GuestAgentPing != nil); n != 1 {
			v.failf(p+"."+pr.name, ErrProbeHandler, "%d set", n)
		}
	}
	if !pod {
		if spec.ReadinessProbe != nil {
			v.fail(p+".readinessProbe", ErrProbePodNetwork)
		}
		if spec.LivenessProbe != nil {
			v.fail(p+".livenessProbe", ErrProbePodNetwork)
		}
	}
}

// WaitAsReceiver is left out: it needs a KubeVirt feature gate and a migration
// target, neither of which exists on a plain host.
func validRunStrategy(s kubevirtv1.VirtualMachineRunStrategy) bool {
	switch s {
	case kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyManual,
		kubevirtv1.RunStrategyHalted, kubevirtv1.RunStrategyOnce:
		return true
	}
	return false
}

// countSet counts the non-nil pointer fields of a one-of struct (VolumeSource,
// NetworkSource, InterfaceBindingMethod), so new upstream sources count too.
func countSet(oneOf any) int {
	rv := reflect.ValueOf(oneOf)
	n := 0
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

func parseQuantity(s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("parse quantity %q: %w", s, err)
	}
	return q, nil
}
