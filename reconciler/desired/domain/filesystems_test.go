package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureFilesystems(t *testing.T) {
	fs := func(dir, tag string) libvirtxml.DomainFilesystem {
		return libvirtxml.DomainFilesystem{
			AccessMode: "passthrough",
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs", Queue: 1024},
			Binary:     &libvirtxml.DomainFilesystemBinary{Path: "/usr/libexec/virtiofsd"},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: dir}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: tag},
			Alias:      &libvirtxml.DomainAlias{Name: "ua-" + tag},
		}
	}
	pvc := func(name, claim string) kubevirtv1.Volume {
		return kubevirtv1.Volume{Name: name, VolumeSource: kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{
			PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	}
	share := func(names ...string) []kubevirtv1.Filesystem {
		var out []kubevirtv1.Filesystem
		for _, n := range names {
			out = append(out, kubevirtv1.Filesystem{Name: n, Virtiofs: &kubevirtv1.FilesystemVirtiofs{}})
		}
		return out
	}
	p := "spec.template.spec."
	for _, tc := range []struct {
		name      string
		fs        []kubevirtv1.Filesystem
		volumes   []kubevirtv1.Volume
		claims    map[string]ClaimDisk
		noDaemon  bool
		want      []libvirtxml.DomainFilesystem
		artifacts []Artifact
		diags     []diagLine
	}{
		{name: "none"},
		{
			name:    "claim and DataVolume by their default directories",
			fs:      share("data", "dv"),
			volumes: []kubevirtv1.Volume{pvc("data", "mypvc"), {Name: "dv", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: "fedora-dv"}}}},
			want:    []libvirtxml.DomainFilesystem{fs("/var/lib/nodevirt/volumes/lab/mypvc", "data"), fs("/var/lib/nodevirt/volumes/lab/fedora-dv", "dv")},
			artifacts: []Artifact{
				{Kind: SharedDir, Volume: "data", Path: "/var/lib/nodevirt/volumes/lab/mypvc", Claim: "mypvc"},
				{Kind: SharedDir, Volume: "dv", Path: "/var/lib/nodevirt/volumes/lab/fedora-dv", Claim: "fedora-dv"},
			},
		},
		{
			name:      "a bound claim shares the directory storage keeps it in",
			fs:        share("data"),
			volumes:   []kubevirtv1.Volume{pvc("data", "mypvc")},
			claims:    map[string]ClaimDisk{"mypvc": {Path: "/srv/pv/local-1/disk.img"}},
			want:      []libvirtxml.DomainFilesystem{fs("/srv/pv/local-1", "data")},
			artifacts: []Artifact{{Kind: SharedDir, Volume: "data", Path: "/srv/pv/local-1", Claim: "mypvc"}},
		},
		{
			name:    "a block claim is no directory",
			fs:      share("data"),
			volumes: []kubevirtv1.Volume{pvc("data", "raw")},
			claims:  map[string]ClaimDisk{"raw": {Path: "/dev/loop7", Block: true}},
			diags: []diagLine{{"error", p + "volumes[0].persistentVolumeClaim.claimName",
				`invalid: claim "raw" is a block device (volumeMode Block); virtiofs shares a directory, so it needs a Filesystem claim`}},
		},
		{
			name:    "ConfigMap shares are refused by name",
			fs:      share("cfg"),
			volumes: []kubevirtv1.Volume{{Name: "cfg", VolumeSource: kubevirtv1.VolumeSource{ConfigMap: &kubevirtv1.ConfigMapVolumeSource{}}}},
			diags: []diagLine{{"error", p + "volumes[0]",
				"unsupported: virtiofs shares of ConfigMap, Secret, ServiceAccount and DownwardAPI volumes are not supported yet; attach the volume as a disk instead"}},
		},
		{
			name:    "a disk image volume is no directory",
			fs:      share("root"),
			volumes: []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{}}}},
			diags: []diagLine{{"error", p + "volumes[0]",
				`invalid: volume "root" cannot back a virtiofs filesystem: only persistentVolumeClaim and dataVolume volumes are directories`}},
		},
		{
			name:  "a filesystem without its volume",
			fs:    share("gone"),
			diags: []diagLine{{"error", p + "domain.devices.filesystems[0].name", `invalid: no volume named "gone"`}},
		},
		{
			name:     "no virtiofsd on the host",
			fs:       share("data"),
			volumes:  []kubevirtv1.Volume{pvc("data", "mypvc")},
			noDaemon: true,
			diags: []diagLine{{"error", p + "domain.devices.filesystems",
				"unsupported: virtiofsd is not installed on this host (looked for /usr/libexec/virtiofsd of package virtiofsd and /usr/lib/qemu/virtiofsd of Debian 12's qemu-system-common); libvirt needs it to share a directory with the guest"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Devices.Filesystems = tc.fs
			s.Volumes = tc.volumes
			in := testInput(s)
			in.Resources.Claims = tc.claims
			ctx := testContext
			if tc.noDaemon {
				ctx.Virtiofsd = ""
			}
			dom := &libvirtxml.Domain{}
			out := &output{object: in.Object, prefix: in.PathPrefix}
			configureFilesystems(in, ctx, dom, out)
			want := &libvirtxml.Domain{}
			if tc.want != nil {
				want.Devices = &libvirtxml.DomainDeviceList{Filesystems: tc.want}
			}
			if diff := cmp.Diff(want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.artifacts, out.artifacts); diff != "" {
				t.Errorf("artifacts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			assertPathsAreFields(t, in, out.diags)
		})
	}
}
