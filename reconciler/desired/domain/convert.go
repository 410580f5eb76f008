package domain

import (
	"errors"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Sentinels for errors.Is on the diagnostics Convert returns.
var (
	// ErrUnsupported marks a field nodevirt refuses: running the VM without it
	// would not be the VM the manifest describes.
	ErrUnsupported = errors.New("unsupported")
	// ErrIgnored marks a field nodevirt does not map yet but can run without.
	ErrIgnored = errors.New("ignored")
	// ErrInvalid marks a value that cannot be mapped (bad base64, MAC, a disk
	// without a volume…). Admission normally catches these first.
	ErrInvalid = errors.New("invalid")
)

// Convert builds the libvirt domain for in. The result always carries a
// domain, even when Diags holds errors: the domain is then best effort (the
// refused parts are left out) and must not be defined.
func Convert(in Input, ctx Context) Result {
	out := &output{object: in.Object, prefix: in.PathPrefix}
	dom := &libvirtxml.Domain{}
	if in.Spec == nil {
		out.add(diag.Error, ErrInvalid, "", "invalid: no spec to convert")
		return Result{Domain: dom, Diags: out.diags}
	}
	for _, configure := range configurators() {
		configure(in, ctx, dom, out)
	}
	return Result{Domain: dom, Artifacts: out.artifacts, Diags: out.diags, Hotplug: out.hotplug}
}

// DomainName is the libvirt name of a VM: KubeVirt's "<namespace>_<name>",
// the only copy of that mapping. It is injective because validation keeps
// "_" out of namespaces (DNS-1123 labels) and names (DNS-1123 subdomains);
// desired.Build still refuses two objects that map to one name (a VM and a
// VMI of the same name do).
func DomainName(namespace, name string) string {
	return namespace + "_" + name
}

// configurator fills the domain elements it owns from the input and reports
// diagnostics and artifacts through out. Configurators never touch each
// other's elements, so each is tested alone against an empty domain.
type configurator func(in Input, ctx Context, dom *libvirtxml.Domain, out *output)

// configurators is the conversion, in order. Element ownership is disjoint,
// so the order decides only the order of diagnostics and artifacts:
func configurators() []configurator {
	return []configurator{
		// 1. The support table first: fields nodevirt ignores or refuses lead
		//    the report, before any element-level problem they may cause;
		//    then what the guest notices differs from KubeVirt (when asked).
		reportUnmapped,
		checkAccessCredentials,
		reportDifferences,
		// 2. Whole-domain settings, in the order libvirt writes them:
		//    type/name/uuid/lifecycle, memory, memtune, memoryBacking,
		//    vcpu+cpu, cputune, numatune, os+sysinfo, features (vmport
		//    joins what configureFeatures wrote), clock, iothreads.
		configureIdentity,
		configureMemory,
		configureMemoryTune,
		configureMemoryBacking,
		configureCPU,
		configureCPUTune,
		configureNUMATune,
		configureOS,
		configureSysInfo,
		configureFeatures,
		configureVMPort,
		configureClock,
		configureIOThreads,
		// 3. Devices in spec order: disks (and the artifacts behind them,
		//    so artifacts follow disk order; the kernel boot artifact of
		//    configureOS comes first), virtiofs filesystems (and their
		//    shared directories), then interfaces, then the
		//    fixed devices (consoles, graphics, balloon, rng, watchdog, input,
		//    sound, guest agent), then the TPM, panic devices and the
		//    controllers KubeVirt declares.
		configureDisks,
		configureFilesystems,
		configureInterfaces,
		configureDevices,
		configureTPM,
		configurePanicDevices,
		configureControllers,
		// 4. Node resources bound before conversion: host PCI devices.
		configureHostDevices,
		// 5. Hotplug capacity last: the ports it adds depend on the devices
		//    above.
		configureHotplug,
	}
}

// output collects what configurators report besides elements.
type output struct {
	object    string
	prefix    string
	artifacts []Artifact
	diags     diag.List
	hotplug   []HotplugDisk
}

// path turns a path relative to the spec ("domain.cpu.model") into the one
// the user sees ("spec.template.spec.domain.cpu.model" for a VM).
func (o *output) path(rel string) string {
	switch {
	case o.prefix == "":
		return rel
	case rel == "":
		return o.prefix
	}
	return o.prefix + "." + rel
}

// add reports about rel, a path inside the spec.
func (o *output) add(sev diag.Severity, err error, rel, format string, args ...any) {
	o.addAt(sev, err, o.path(rel), format, args...)
}

// addAt reports about a path outside the spec (metadata), given whole. A
// message without arguments is used as it is: validate reports the same
// differences for every VM, and a copy of each would be held until the
// report is printed.
func (o *output) addAt(sev diag.Severity, err error, path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	o.diags = append(o.diags, diag.Diagnostic{Severity: sev, Object: o.object, Path: path, Message: msg, Err: err})
}

// refuse reports a field the converter will not run without.
func (o *output) refuse(rel, why string) {
	o.add(diag.Error, ErrUnsupported, rel, "unsupported: %s", why)
}

// ignore reports a field the converter leaves out of the domain.
func (o *output) ignore(rel, why string) {
	o.add(diag.Warning, ErrIgnored, rel, "ignored: not supported yet; %s", why)
}

// invalid reports a value that cannot be mapped.
func (o *output) invalid(rel, format string, args ...any) {
	o.add(diag.Error, ErrInvalid, rel, "invalid: "+format, args...)
}

// devices returns dom.Devices, creating it on first use so a domain without
// devices keeps a nil list.
func devices(dom *libvirtxml.Domain) *libvirtxml.DomainDeviceList {
	if dom.Devices == nil {
		dom.Devices = &libvirtxml.DomainDeviceList{}
	}
	return dom.Devices
}

// enabled reads KubeVirt's optional booleans, which mean "on" when unset.
func enabled(b *bool) bool { return b == nil || *b }

// isFalse reports an explicit false.
func isFalse(b *bool) bool { return b != nil && !*b }

// isTrue reports an explicit true.
func isTrue(b *bool) bool { return b != nil && *b }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// userAlias is the alias of a device the user named. libvirt keeps aliases
// with the "ua-" prefix in the persistent XML, so devices stay addressable by
// their spec name (hotplug, events, drift).
func userAlias(name string) *libvirtxml.DomainAlias {
	return &libvirtxml.DomainAlias{Name: "ua-" + name}
}
