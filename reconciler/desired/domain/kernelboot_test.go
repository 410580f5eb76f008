package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureKernelBoot(t *testing.T) {
	const dir = "/var/lib/nodevirt/disks/lab/vm/kernel-boot"
	at := "spec.template.spec.domain.firmware.kernelBoot"
	container := func(image, kernel, initrd string) *kubevirtv1.KernelBootContainer {
		return &kubevirtv1.KernelBootContainer{Image: image, KernelPath: kernel, InitrdPath: initrd}
	}
	for _, tc := range []struct {
		name     string
		kb       *kubevirtv1.KernelBoot
		want     libvirtxml.DomainOS
		artifact *Artifact
		diags    []diagLine
	}{
		{
			name: "kernel, initrd and arguments from a registry image",
			kb:   &kubevirtv1.KernelBoot{KernelArgs: "console=ttyS0", Container: container("quay.io/kubevirt/alpine-ext-kernel-boot-demo", "/boot/vmlinuz-virt", "/boot/initramfs-virt")},
			want: libvirtxml.DomainOS{Kernel: dir + "/kernel", Initrd: dir + "/initrd", Cmdline: "console=ttyS0"},
			artifact: &Artifact{Kind: KernelBoot, Path: dir, Image: "quay.io/kubevirt/alpine-ext-kernel-boot-demo",
				KernelPath: "/boot/vmlinuz-virt", InitrdPath: "/boot/initramfs-virt"},
		},
		{
			name:     "a kernel alone from a local OCI layout under an allowed directory",
			kb:       &kubevirtv1.KernelBoot{Container: container("oci:/srv/images/kernel:v1", "/boot/vmlinuz", "")},
			want:     libvirtxml.DomainOS{Kernel: dir + "/kernel"},
			artifact: &Artifact{Kind: KernelBoot, Path: dir, Image: "oci:/srv/images/kernel:v1", KernelPath: "/boot/vmlinuz"},
		},
		{
			name:     "an image archive under an allowed directory",
			kb:       &kubevirtv1.KernelBoot{Container: container("docker-archive:/var/data/kernel.tar", "/boot/vmlinuz", "")},
			want:     libvirtxml.DomainOS{Kernel: dir + "/kernel"},
			artifact: &Artifact{Kind: KernelBoot, Path: dir, Image: "docker-archive:/var/data/kernel.tar", KernelPath: "/boot/vmlinuz"},
		},
		{
			name: "an image archive elsewhere",
			kb:   &kubevirtv1.KernelBoot{Container: container("docker-archive:/root/kernel.tar", "/boot/vmlinuz", "")},
			diags: []diagLine{{"error", at + ".container.image",
				"host file not allowed: /root/kernel.tar is not under a directory of --allowed-host-dirs (/srv, /var/data); add the directory that holds it to --allowed-host-dirs"}},
		},
		{
			name:  "kernel arguments without a kernel",
			kb:    &kubevirtv1.KernelBoot{KernelArgs: "console=ttyS0"},
			diags: []diagLine{{"error", at + ".kernelArgs", "invalid: kernel arguments cannot be provided without an external kernel: set domain.firmware.kernelBoot.container"}},
		},
		{
			name: "no image and no files",
			kb:   &kubevirtv1.KernelBoot{Container: container("", "", "")},
			diags: []diagLine{
				{"error", at + ".container.image", "invalid: domain.firmware.kernelBoot.container must be defined with an image"},
				{"error", at + ".container", "invalid: domain.firmware.kernelBoot.container must be defined with at least one of the following: kernelPath, initrdPath"},
			},
		},
		{
			name: "relative components",
			kb:   &kubevirtv1.KernelBoot{Container: container("img", "boot/vmlinuz", "/boot/../initrd")},
			diags: []diagLine{
				{"error", at + ".container.kernelPath", `invalid: "boot/vmlinuz" must be an absolute path to a file without relative components`},
				{"error", at + ".container.initrdPath", `invalid: "/boot/../initrd" must be an absolute path to a file without relative components`},
			},
		},
		{
			name:  "an initrd without a kernel cannot boot",
			kb:    &kubevirtv1.KernelBoot{Container: container("img", "", "/boot/initrd")},
			diags: []diagLine{{"error", at + ".container.initrdPath", "invalid: an initrd without kernelPath cannot boot: QEMU loads an initrd only with a kernel"}},
		},
		{
			name:  "a disk file is no container image",
			kb:    &kubevirtv1.KernelBoot{Container: container("file:///srv/disk.qcow2", "/boot/vmlinuz", "")},
			diags: []diagLine{{"error", at + ".container.image", `invalid: "file:///srv/disk.qcow2" names a disk file, not a container image; use oci:/path/to/layout[:tag] or docker-archive:/path/to/image.tar for a local image`}},
		},
		{
			name: "a layout outside the allowed directories",
			kb:   &kubevirtv1.KernelBoot{Container: container("oci:/etc/images", "/boot/vmlinuz", "")},
			diags: []diagLine{{"error", at + ".container.image",
				"host file not allowed: /etc/images is not under a directory of --allowed-host-dirs (/srv, /var/data); add the directory that holds it to --allowed-host-dirs"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Firmware = &kubevirtv1.Firmware{KernelBoot: tc.kb}
			in := testInput(s)
			var os libvirtxml.DomainOS
			out := &output{object: in.Object, prefix: in.PathPrefix}
			configureKernelBoot(in, testContext, &os, out)
			if diff := cmp.Diff(tc.want, os); diff != "" {
				t.Errorf("os (-want +got):\n%s", diff)
			}
			var want []Artifact
			if tc.artifact != nil {
				want = []Artifact{*tc.artifact}
			}
			if diff := cmp.Diff(want, out.artifacts); diff != "" {
				t.Errorf("artifacts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			assertPathsAreFields(t, in, out.diags)
		})
	}
}
