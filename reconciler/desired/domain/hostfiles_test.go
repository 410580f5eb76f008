package domain

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// hostVolumeSpec is a VMI spec with one disk over the given volume source.
func hostVolumeSpec(src kubevirtv1.VolumeSource) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{
		Domain: kubevirtv1.DomainSpec{
			Memory:  &kubevirtv1.Memory{Guest: ptr(resource.MustParse("64Mi"))},
			Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: "d"}}},
		},
		Volumes: []kubevirtv1.Volume{{Name: "d", VolumeSource: src}},
	}
}

func hostDisk(p string) kubevirtv1.VolumeSource {
	return kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: p, Type: kubevirtv1.HostDiskExists}}
}

func containerDisk(image string) kubevirtv1.VolumeSource {
	return kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: image}}
}

// hostDisk paths and local containerDisk images must lie under
// --allowed-host-dirs, resolved under --root: nothing else on the host can
// become a VM's disk or backing image.
func TestConvert_hostFilesAllowList(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{"data/vms", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Links inside the allowed directory: to the root's /etc (absolute),
	// climbing out (relative), and to a directory outside the root.
	for link, target := range map[string]string{"data/etc": "/etc", "data/up": "../..", "data/out": outside} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Inside the allowed directory, pointing within it: fine.
	if err := os.Symlink("vms", filepath.Join(root, "data/current")); err != nil {
		t.Fatal(err)
	}
	allowed := Context{Type: "kvm", Arch: "x86_64", DiskDir: "/state/disks", VolumeDir: "/state/volumes", Root: root, HostDirs: []string{"/data"}}
	none := allowed
	none.HostDirs = nil

	for _, tc := range []struct {
		name string
		ctx  Context
		src  kubevirtv1.VolumeSource
		path string // the refused field, "" when accepted
		want string // the host file the domain or artifact uses when accepted
	}{
		{"no allow-list: hostDisk", none, hostDisk("/data/vms/a.img"), "spec.volumes[0].hostDisk.path", ""},
		{"no allow-list: file image", none, containerDisk("file:///data/vms/a.qcow2"), "spec.volumes[0].containerDisk.image", ""},
		{"no allow-list: path image", none, containerDisk("/data/vms/a.qcow2"), "spec.volumes[0].containerDisk.image", ""},
		{"no allow-list: oci layout", none, containerDisk("oci:/data/layout:v1"), "spec.volumes[0].containerDisk.image", ""},
		{"shadow", allowed, hostDisk("/etc/shadow"), "spec.volumes[0].hostDisk.path", ""},
		{"dot-dot out of the allowed dir", allowed, hostDisk("/data/../etc/shadow"), "spec.volumes[0].hostDisk.path", ""},
		{"relative", allowed, hostDisk("data/vms/a.img"), "spec.volumes[0].hostDisk.path", ""},
		{"the allowed dir itself", allowed, hostDisk("/data"), "spec.volumes[0].hostDisk.path", ""},
		{"absolute symlink to /etc", allowed, hostDisk("/data/etc/shadow"), "spec.volumes[0].hostDisk.path", ""},
		{"relative symlink up", allowed, hostDisk("/data/up/etc/shadow"), "spec.volumes[0].hostDisk.path", ""},
		{"symlink outside the root", allowed, containerDisk("file:///data/out/x.qcow2"), "spec.volumes[0].containerDisk.image", ""},
		{"image outside", allowed, containerDisk("/etc/passwd"), "spec.volumes[0].containerDisk.image", ""},
		{"hostDisk inside", allowed, hostDisk("/data/vms/a.img"), "", filepath.Join(root, "data/vms/a.img")},
		{"hostDisk through a link inside", allowed, hostDisk("/data/current/a.img"), "", filepath.Join(root, "data/vms/a.img")},
		{"file image inside", allowed, containerDisk("file:///data/vms/a.qcow2"), "", "file://" + filepath.Join(root, "data/vms/a.qcow2")},
		{"path image inside", allowed, containerDisk("/data/vms/a.qcow2"), "", filepath.Join(root, "data/vms/a.qcow2")},
		{"oci layout inside", allowed, containerDisk("oci:/data/layout:v1"), "", "oci:" + filepath.Join(root, "data/layout") + ":v1"},
		{"registry image needs no allow-list", none, containerDisk("quay.io/containerdisks/fedora:40"), "", "quay.io/containerdisks/fedora:40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Convert(Input{Namespace: "lab", Name: "vm", Spec: hostVolumeSpec(tc.src), Object: "VirtualMachineInstance lab/vm", PathPrefix: "spec"}, tc.ctx)
			errs := res.Diags.Errors()
			if tc.path != "" {
				if len(errs) != 1 || errs[0].Path != tc.path || !errors.Is(errs[0], ErrHostFileNotAllowed) || !strings.Contains(errs[0].Message, "--allowed-host-dirs") {
					t.Fatalf("want one refusal at %s naming --allowed-host-dirs, got %v", tc.path, res.Diags)
				}
				if len(res.Artifacts) != 0 {
					t.Fatalf("a refused host file still has artifacts: %+v", res.Artifacts)
				}
				return
			}
			if len(errs) != 0 || len(res.Artifacts) != 1 {
				t.Fatalf("diagnostics %v, artifacts %+v", res.Diags, res.Artifacts)
			}
			a := res.Artifacts[0]
			got := a.Path
			if a.Kind == ContainerDisk {
				got = a.Image
			}
			if got != tc.want {
				t.Fatalf("host file %q, want %q", got, tc.want)
			}
		})
	}
}
