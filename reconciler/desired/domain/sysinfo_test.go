package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureSysInfo(t *testing.T) {
	entry := func(kv ...string) []libvirtxml.DomainSysInfoEntry { return entries(kv...) }
	defaults := entry("manufacturer", "KubeVirt", "product", "None", "family", "KubeVirt")
	for _, tc := range []struct {
		name  string
		edit  func(*Input)
		ctx   func(*Context)
		want  *libvirtxml.DomainSysInfoSMBIOS
		diags []diagLine
	}{
		{
			name: "KubeVirt's defaults; the UUID is the domain's",
			want: &libvirtxml.DomainSysInfoSMBIOS{System: &libvirtxml.DomainSysInfoSystem{Entry: defaults}},
		},
		{
			name: "firmware serial after version, libvirt's order",
			edit: func(in *Input) { in.Spec.Domain.Firmware = &kubevirtv1.Firmware{Serial: "SN-1"} },
			want: &libvirtxml.DomainSysInfoSMBIOS{System: &libvirtxml.DomainSysInfoSystem{Entry: entry(
				"manufacturer", "KubeVirt", "product", "None", "serial", "SN-1", "family", "KubeVirt")}},
		},
		{
			name: "node smbios values replace the defaults",
			ctx: func(c *Context) {
				c.SMBIOS = &SMBIOS{Manufacturer: "Acme", Product: "Lab", Version: "4.18", SKU: "S1", Family: "Fam"}
			},
			want: &libvirtxml.DomainSysInfoSMBIOS{System: &libvirtxml.DomainSysInfoSystem{Entry: entry(
				"manufacturer", "Acme", "product", "Lab", "version", "4.18", "sku", "S1", "family", "Fam")}},
		},
		{
			name: "base board manufacturer annotation; other KubeVirt annotations warned",
			edit: func(in *Input) {
				in.Annotations = map[string]string{
					AnnotationBaseBoardVendor:                 "Radical Edward",
					"smbios.vm.kubevirt.io/baseBoardProduct":  "X",
					"hooks.kubevirt.io/hookSidecars":          `[{"image":"sidecar"}]`,
					"example.com/anything":                    "not KubeVirt's: silent",
					"kubevirt.io/latest-observed-api-version": "v1",
				}
				in.AnnotationsPath = "spec.template.metadata.annotations"
			},
			want: &libvirtxml.DomainSysInfoSMBIOS{
				System:    &libvirtxml.DomainSysInfoSystem{Entry: defaults},
				BaseBoard: []libvirtxml.DomainSysInfoBaseBoard{{Entry: entry("manufacturer", "Radical Edward")}},
			},
			diags: []diagLine{
				{"warning", `spec.template.metadata.annotations["hooks.kubevirt.io/hookSidecars"]`, "ignored: not supported yet; " + annotationHookSidecarsWhy},
				{"warning", `spec.template.metadata.annotations["smbios.vm.kubevirt.io/baseBoardProduct"]`, "ignored: not supported yet; nodevirt maps only smbios.vm.kubevirt.io/baseBoardManufacturer (as KubeVirt's SMBIOS hook does)"},
			},
		},
		{
			name: "chassis",
			edit: func(in *Input) {
				in.Spec.Domain.Chassis = &kubevirtv1.Chassis{Manufacturer: "Acme", Serial: "C-1", Asset: "A-7"}
			},
			want: &libvirtxml.DomainSysInfoSMBIOS{
				System:  &libvirtxml.DomainSysInfoSystem{Entry: defaults},
				Chassis: &libvirtxml.DomainSysInfoChassis{Entry: entry("manufacturer", "Acme", "serial", "C-1", "asset", "A-7")},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(kubevirtv1.VirtualMachineInstanceSpec{})
			if tc.edit != nil {
				tc.edit(&in)
			}
			ctx := testContext
			if tc.ctx != nil {
				tc.ctx(&ctx)
			}
			dom := &libvirtxml.Domain{}
			out := &output{object: in.Object, prefix: in.PathPrefix}
			configureSysInfo(in, ctx, dom, out)
			want := &libvirtxml.Domain{SysInfo: []libvirtxml.DomainSysInfo{{SMBIOS: tc.want}}}
			if diff := cmp.Diff(want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			assertPathsAreFields(t, in, out.diags)
		})
	}
}
