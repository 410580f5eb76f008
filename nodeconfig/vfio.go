package nodeconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Annotations on the HyperConverged object that opt in to what OpenShift
// leaves to MachineConfigs.
const (
	// AnnotationVFIOGenerate "true": nodevirt writes /etc/modprobe.d/vfio.conf
	// (the permitted devices' ids), /etc/modules-load.d/vfio-pci.conf and the
	// IOMMU kernel argument (intel_iommu=on or amd_iommu=on by CPU vendor)
	// when no config of the source does.
	AnnotationVFIOGenerate = "nodevirt.io/vfio-generate"
	// AnnotationVFIOBind "true": nodevirt binds permitted devices to vfio-pci
	// at run time through driver_override (vfio.conf acts only at boot).
	AnnotationVFIOBind = "nodevirt.io/vfio-bind"
)

// Paths of the VFIO files, as the seed (8.14.11) names them.
const (
	VFIOConfPath        = "/etc/modprobe.d/vfio.conf"
	VFIOModulesLoadPath = "/etc/modules-load.d/vfio-pci.conf"
)

var selector = regexp.MustCompile(`^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$`)

// renderHyperConverged reads permittedHostDevices and the VFIO opt-ins.
func renderHyperConverged(h *HostConfig, set *manifests.Set) {
	var hcs []*manifests.Object
	for _, o := range set.OfKind("HyperConverged") {
		if _, ok := o.Value.(*manifests.HyperConverged); ok {
			hcs = append(hcs, o)
		}
	}
	if len(hcs) == 0 {
		return
	}
	o := hcs[0]
	for _, extra := range hcs[1:] {
		h.Diags = append(h.Diags, extra.Warnf("metadata.name", "only one HyperConverged is read per source; %s is used and this one is ignored", o.Ref))
	}
	hc := o.Value.(*manifests.HyperConverged)
	src := func(p string) Source {
		line, _ := o.Pos(p)
		return Source{Object: o.Ref.String(), File: o.File, Line: line, Path: p}
	}
	if phd := hc.Spec.PermittedHostDevices; phd != nil {
		seen := map[string]string{}
		for i, d := range phd.PciHostDevices {
			at := fmt.Sprintf("spec.permittedHostDevices.pciHostDevices[%d]", i)
			if !selector.MatchString(d.PCIDeviceSelector) {
				h.Diags = append(h.Diags, o.Errorf(at+".pciDeviceSelector", "%w; got %q", ErrSelector, d.PCIDeviceSelector))
				continue
			}
			if d.ResourceName == "" {
				h.Diags = append(h.Diags, o.Errorf(at+".resourceName", "resourceName is required"))
				continue
			}
			if d.Disabled {
				continue
			}
			sel := strings.ToLower(d.PCIDeviceSelector)
			if prev, dup := seen[sel]; dup {
				h.Diags = append(h.Diags, o.Warnf(at+".pciDeviceSelector", "selector %s is listed twice; KubeVirt keeps the last (%s, not %s)", d.PCIDeviceSelector, d.ResourceName, prev))
				for j := range h.PCI {
					if h.PCI[j].Selector == sel {
						h.PCI = append(h.PCI[:j], h.PCI[j+1:]...)
						break
					}
				}
			}
			seen[sel] = d.ResourceName
			h.PCI = append(h.PCI, PCIResource{Selector: sel, ResourceName: d.ResourceName, External: d.ExternalResourceProvider, Source: src(at)})
		}
	}
	for _, a := range []string{AnnotationVFIOGenerate, AnnotationVFIOBind} {
		v, ok := o.Annotations[a]
		if !ok {
			continue
		}
		p := `metadata.annotations["` + a + `"]`
		switch v {
		case "true":
		case "false":
			continue
		default:
			h.Diags = append(h.Diags, o.Errorf(p, "%w: annotation %s must be \"true\" or \"false\", got %q", ErrVFIO, a, v))
			continue
		}
		s := src(p)
		h.VFIO.Source = &s
		if a == AnnotationVFIOGenerate {
			h.VFIO.Generate = true
		} else {
			h.VFIO.Bind = true
		}
	}
}

// vfioFromConfig reads what the configs already do for VFIO: vfio-pci ids
// in modprobe.d, vfio-pci in modules-load.d, IOMMU kernel arguments.
func vfioFromConfig(h *HostConfig) {
	ids := map[string]bool{}
	for _, f := range h.Files {
		switch {
		case strings.HasPrefix(f.Path, "/etc/modprobe.d/") && strings.HasSuffix(f.Path, ".conf"):
			for _, id := range VFIOIDs(f.Contents) {
				if !ids[id] {
					ids[id] = true
					h.VFIO.IDs = append(h.VFIO.IDs, id)
				}
			}
		case strings.HasPrefix(f.Path, "/etc/modules-load.d/") && strings.HasSuffix(f.Path, ".conf"):
			if loadsVFIO(f.Contents) {
				h.VFIO.ModulesLoad = true
			}
		}
	}
	for _, k := range h.KernelArgs {
		if isIOMMUArg(k.Value) {
			h.VFIO.IOMMU = append(h.VFIO.IOMMU, k.Value)
		}
	}
}

func isIOMMUArg(a string) bool {
	key, _, _ := strings.Cut(a, "=")
	return key == "intel_iommu" || key == "amd_iommu" || key == "iommu"
}

// VFIOIDs returns the lower-case vendor:device ids of the "options vfio-pci
// ids=..." lines of a modprobe.d file (vfio_pci is the same module).
func VFIOIDs(conf []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "options" || (f[1] != "vfio-pci" && f[1] != "vfio_pci") {
			continue
		}
		for _, opt := range f[2:] {
			v, ok := strings.CutPrefix(opt, "ids=")
			if !ok {
				continue
			}
			for _, id := range strings.Split(v, ",") {
				parts := strings.Split(id, ":")
				if len(parts) >= 2 {
					out = append(out, strings.ToLower(parts[0]+":"+parts[1]))
				}
			}
		}
	}
	return out
}

func loadsVFIO(conf []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "vfio-pci" || l == "vfio_pci" {
			return true
		}
	}
	return false
}

// generateVFIO writes what the HyperConverged object opted in to and no
// config already does.
func generateVFIO(h *HostConfig) {
	if !h.VFIO.Generate || h.VFIO.Source == nil {
		return
	}
	src := *h.VFIO.Source
	warn := func(format string, args ...any) {
		h.Diags = append(h.Diags, diag.Diagnostic{Severity: diag.Warning, File: src.File, Line: src.Line, Object: src.Object, Path: src.Path,
			Message: fmt.Sprintf(format, args...), Err: ErrVFIO})
	}
	have := map[string]bool{}
	for _, id := range h.VFIO.IDs {
		have[id] = true
	}
	var missing []string
	for _, p := range h.PCI {
		if !p.External && !have[p.Selector] {
			missing = append(missing, p.Selector)
			have[p.Selector] = true
		}
	}
	bound := false
	for _, p := range h.PCI {
		bound = bound || !p.External
	}
	if !bound {
		return
	}
	generated := false
	if len(missing) > 0 {
		if owner := vfioOptionsFile(h); owner != nil {
			warn("vfio: %s (%s) sets the vfio-pci ids; add %s there (modprobe keeps only one ids= option, so nodevirt does not write a second)", owner.Path, owner.Source.Object, strings.Join(missing, ","))
		} else {
			ids := append(append([]string(nil), h.VFIO.IDs...), missing...)
			sort.Strings(ids)
			h.Files = append(h.Files, File{Path: VFIOConfPath, Mode: 0o644,
				Contents: []byte("options vfio-pci ids=" + strings.Join(ids, ",") + "\n"), Source: src})
			h.VFIO.IDs = ids
			generated = true
		}
	}
	if !h.VFIO.ModulesLoad {
		if f := h.File(VFIOModulesLoadPath); f != nil {
			warn("vfio: %s (%s) does not load vfio-pci; nodevirt leaves it as written", f.Path, f.Source.Object)
		} else {
			h.Files = append(h.Files, File{Path: VFIOModulesLoadPath, Mode: 0o644, Contents: []byte("vfio-pci\n"), Source: src})
			h.VFIO.ModulesLoad = true
			generated = true
		}
	}
	if len(h.VFIO.IOMMU) == 0 {
		arg := ""
		switch h.Node.CPUVendor {
		case "intel":
			arg = "intel_iommu=on"
		case "amd":
			arg = "amd_iommu=on"
		}
		if arg == "" {
			h.Diags = append(h.Diags, diag.Diagnostic{Severity: diag.Warning, File: src.File, Line: src.Line, Object: src.Object, Path: src.Path,
				Message: fmt.Sprintf("%s %q: add intel_iommu=on or amd_iommu=on to a MachineConfig's kernelArguments", ErrCPUVendor.Error(), h.Node.CPUVendor), Err: ErrCPUVendor})
		} else {
			h.KernelArgs = append(h.KernelArgs, KernelArg{Value: arg, Source: src})
			h.VFIO.IOMMU = []string{arg}
			generated = true
		}
	}
	h.VFIO.Generated = generated
}

// vfioOptionsFile returns the config file that sets vfio-pci ids, if any.
func vfioOptionsFile(h *HostConfig) *File {
	if f := h.File(VFIOConfPath); f != nil {
		return f
	}
	for i, f := range h.Files {
		if strings.HasPrefix(f.Path, "/etc/modprobe.d/") && len(VFIOIDs(f.Contents)) > 0 {
			return &h.Files[i]
		}
	}
	return nil
}
