package vm_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// kernelLayout writes an OCI image layout with one image whose layer holds
// files (path → content), as KubeVirt's kernel boot demo images do.
func kernelLayout(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
}

// A direct kernel boot VM: the kernel and initrd come out of a local OCI
// layout into the VM's directory before the domain is defined and started.
func TestReconciler_kernelBoot(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	images := t.TempDir()
	h.opt.Context.HostDirs = []string{images}
	kernelLayout(t, filepath.Join(images, "alpine"), map[string]string{"boot/vmlinuz-virt": "MZ kernel", "boot/initramfs-virt": "initramfs"})
	manifest := `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: kboot, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  domain:
    devices: {}
    firmware:
      kernelBoot:
        container:
          image: oci:` + filepath.Join(images, "alpine") + `
          kernelPath: /boot/vmlinuz-virt
          initrdPath: /boot/initramfs-virt
        kernelArgs: console=ttyS0
    memory: {guest: 64Mi}
`
	st := h.render("r1", manifest)
	if st.Diags.HasErrors() {
		t.Fatalf("render: %v", st.Diags.Err())
	}
	p, _ := h.apply(st)
	if got := kinds(p); got != "create default_kboot, start default_kboot" {
		t.Fatalf("plan: %s", got)
	}
	dir := filepath.Join(h.state, "disks", "default", "kboot", "kernel-boot")
	for file, want := range map[string]string{"kernel": "MZ kernel", "initrd": "initramfs"} {
		if got, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	xml := h.domains()["default_kboot"].XML
	for _, want := range []string{"<kernel>" + dir + "/kernel</kernel>", "<initrd>" + dir + "/initrd</initrd>", "<cmdline>console=ttyS0</cmdline>"} {
		if !strings.Contains(xml, want) {
			t.Errorf("defined domain lacks %s:\n%s", want, xml)
		}
	}
}

// A registry image keeps its refusal, naming what to do instead; the VM is
// not defined.
func TestReconciler_kernelBootFromRegistryRefused(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	st := h.render("r1", `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: kboot, namespace: default}
spec:
  domain:
    firmware:
      kernelBoot:
        container: {image: "registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel", kernelPath: /boot/vmlinuz-virt}
    memory: {guest: 64Mi}
`)
	p, err := h.rec.Plan(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	rep := h.rec.Apply(t.Context(), p)
	if rep.Failed == 0 || len(rep.Outcomes) == 0 || !strings.Contains(rep.Outcomes[0].Error, "kernel boot image registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel: pulling images from a registry is not supported yet") {
		t.Fatalf("apply: %+v", rep.Outcomes)
	}
	if _, defined := h.domains()["default_kboot"]; defined {
		t.Error("the VM was defined without its kernel")
	}
}

// A virtiofs VM waits for its claim's directory, then is defined with the
// filesystem sharing it.
func TestReconciler_virtiofsWaitsForTheClaimDirectory(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	h.opt.Context.Virtiofsd = "/usr/libexec/virtiofsd"
	manifest := `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: share, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  domain:
    devices:
      filesystems: [{name: data, virtiofs: {}}]
    memory: {guest: 64Mi}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: shared-data}}
`
	p, _ := h.apply(h.render("r1", manifest))
	if got := kinds(p); got != "wait default_share" {
		t.Fatalf("plan without the directory: %s", got)
	}
	dir := filepath.Join(h.state, "volumes", "default", "shared-data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ = h.apply(h.render("r1", manifest))
	if got := kinds(p); got != "create default_share, start default_share" {
		t.Fatalf("plan with the directory: %s", got)
	}
	xml := h.domains()["default_share"].XML
	if !strings.Contains(xml, "<source dir='"+dir+"'/>") && !strings.Contains(xml, `<source dir="`+dir+`"`) {
		t.Errorf("defined domain does not share %s:\n%s", dir, xml)
	}
}
