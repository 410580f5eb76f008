package domain

import (
	"sort"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// SMBIOS is the node-wide system information every guest sees in SMBIOS
// type 1, KubeVirt's smbios configuration (KubeVirt CR
// spec.configuration.smbios, set through the HyperConverged CR).
type SMBIOS struct {
	Manufacturer string
	Product      string
	Version      string
	SKU          string
	Family       string
}

// DefaultSMBIOS is KubeVirt's default smbios configuration: a guest moved
// from KubeVirt keeps seeing the same system in dmidecode.
func DefaultSMBIOS() SMBIOS {
	return SMBIOS{Manufacturer: "KubeVirt", Product: "None", Family: "KubeVirt"}
}

// SMBIOS annotations. KubeVirt's SMBIOS hook sidecar reads the base board
// manufacturer from the VMI's annotations; nodevirt writes it itself, as it
// runs no sidecars.
const (
	smbiosAnnotationPrefix     = "smbios.vm.kubevirt.io/"
	AnnotationBaseBoardVendor  = smbiosAnnotationPrefix + "baseBoardManufacturer"
	annotationHookSidecars     = "hooks.kubevirt.io/hookSidecars"
	annotationHookSidecarsWhy  = "hook sidecars are containers of KubeVirt's virt-launcher pod; nodevirt runs none, so they do not edit the domain"
	annotationUnknownSMBIOSWhy = "nodevirt maps only " + AnnotationBaseBoardVendor + " (as KubeVirt's SMBIOS hook does)"
)

// configureSysInfo owns <sysinfo type=smbios>; configureOS points
// <os><smbios mode=sysinfo> at it. As KubeVirt, the system entry always
// carries the node's smbios values, plus the firmware serial; chassis
// entries come from domain.chassis and the base board from the SMBIOS
// annotation. Entries are in libvirt's own order, so the persistent XML
// reads back equal. Unlike KubeVirt there is no uuid entry: the domain's
// <uuid> is the firmware UUID and QEMU gives the guest that one, while an
// entry would make libvirt refuse any copy of the domain under another
// UUID (a clone, a validation run) as a mismatch.
func configureSysInfo(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	cfg := DefaultSMBIOS()
	if ctx.SMBIOS != nil {
		cfg = *ctx.SMBIOS
	}
	serial := ""
	if fw := in.Spec.Domain.Firmware; fw != nil {
		serial = fw.Serial
	}
	smbios := &libvirtxml.DomainSysInfoSMBIOS{
		System: &libvirtxml.DomainSysInfoSystem{Entry: entries(
			"manufacturer", cfg.Manufacturer,
			"product", cfg.Product,
			"version", cfg.Version,
			"serial", serial,
			"sku", cfg.SKU,
			"family", cfg.Family,
		)},
	}
	if vendor := in.Annotations[AnnotationBaseBoardVendor]; vendor != "" {
		smbios.BaseBoard = []libvirtxml.DomainSysInfoBaseBoard{{Entry: entries("manufacturer", vendor)}}
	}
	if c := in.Spec.Domain.Chassis; c != nil {
		if e := entries("manufacturer", c.Manufacturer, "version", c.Version, "serial", c.Serial, "asset", c.Asset, "sku", c.Sku); len(e) > 0 {
			smbios.Chassis = &libvirtxml.DomainSysInfoChassis{Entry: e}
		}
	}
	dom.SysInfo = []libvirtxml.DomainSysInfo{{SMBIOS: smbios}}
	reportAnnotations(in, out)
}

// entries turns name/value pairs into sysinfo entries, leaving out empty
// values (libvirt rejects an empty entry).
func entries(kv ...string) []libvirtxml.DomainSysInfoEntry {
	var out []libvirtxml.DomainSysInfoEntry
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, libvirtxml.DomainSysInfoEntry{Name: kv[i], Value: kv[i+1]})
		}
	}
	return out
}

// reportAnnotations warns about the KubeVirt annotations nodevirt reads
// but does not act on; annotations KubeVirt itself ignores stay silent.
func reportAnnotations(in Input, out *output) {
	keys := make([]string, 0, len(in.Annotations))
	for k := range in.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var why string
		switch {
		case k == AnnotationBaseBoardVendor:
			continue
		case strings.HasPrefix(k, smbiosAnnotationPrefix):
			why = annotationUnknownSMBIOSWhy
		case k == annotationHookSidecars:
			why = annotationHookSidecarsWhy
		default:
			continue
		}
		out.addAt(diag.Warning, ErrIgnored, annotationPath(in, k), "ignored: not supported yet; %s", why)
	}
}

// annotationPath is the user's path of annotation key.
func annotationPath(in Input, key string) string {
	p := in.AnnotationsPath
	if p == "" {
		p = "metadata.annotations"
	}
	// Quoted, as manifests paths name keys with dots (manifests.Object.Pos).
	return p + `["` + key + `"]`
}
