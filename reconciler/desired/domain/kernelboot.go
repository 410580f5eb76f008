package domain

import (
	"path"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/internal/pathelem"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Host file names of a kernel boot artifact, in its directory.
const (
	KernelFile = "kernel"
	InitrdFile = "initrd"
)

// kernelBootDir is the per-VM directory the kernel and initrd are
// extracted into; no volume file can take the name, as volume files carry
// an extension.
const kernelBootDir = "kernel-boot"

// kernelBootPath is where kernelBoot problems are reported.
const kernelBootPath = "domain.firmware.kernelBoot"

// configureKernelBoot maps domain.firmware.kernelBoot into <os> (direct
// kernel boot): QEMU loads the kernel and initrd, extracted from the
// container image into DiskDir/NS/NAME/kernel-boot/ (artifact KernelBoot),
// and passes kernelArgs as the command line, as KubeVirt's launcher does
// with the files its init container copies out of the image. The rules
// are KubeVirt's admission rules; where nodevirt is stricter it says why.
func configureKernelBoot(in Input, ctx Context, os *libvirtxml.DomainOS, out *output) {
	fw := in.Spec.Domain.Firmware
	if fw == nil || fw.KernelBoot == nil {
		return
	}
	kb := fw.KernelBoot
	c := kb.Container
	if c == nil {
		if kb.KernelArgs != "" {
			out.invalid(kernelBootPath+".kernelArgs", "kernel arguments cannot be provided without an external kernel: set %s.container", kernelBootPath)
		}
		return
	}
	at := kernelBootPath + ".container"
	ok := true
	if c.Image == "" {
		out.invalid(at+".image", "%s must be defined with an image", at)
		ok = false
	}
	if c.KernelPath == "" && c.InitrdPath == "" {
		out.invalid(at, "%s must be defined with at least one of the following: kernelPath, initrdPath", at)
		ok = false
	}
	for _, p := range []struct{ field, value string }{{"kernelPath", c.KernelPath}, {"initrdPath", c.InitrdPath}} {
		if p.value != "" && !cleanAbs(p.value) {
			out.invalid(at+"."+p.field, "%q must be an absolute path to a file without relative components", p.value)
			ok = false
		}
	}
	if c.KernelPath == "" && c.InitrdPath != "" {
		// KubeVirt admits it, but QEMU loads an initrd only together with
		// a kernel (-initrd needs -kernel), so the VM could never start.
		out.invalid(at+".initrdPath", "an initrd without kernelPath cannot boot: QEMU loads an initrd only with a kernel")
		ok = false
	}
	if !ok {
		return
	}
	image, ok := kernelImage(ctx, c.Image, at+".image", out)
	if !ok {
		return
	}
	dir, err := pathelem.Join(ctx.DiskDir, in.Namespace, in.Name, kernelBootDir)
	if err != nil {
		out.invalid(at, "the VM's namespace or name cannot be a directory on the host: %v", err)
		return
	}
	a := Artifact{Kind: KernelBoot, Path: dir, Image: image, PullPolicy: string(c.ImagePullPolicy), KernelPath: c.KernelPath, InitrdPath: c.InitrdPath}
	if c.KernelPath != "" {
		os.Kernel = path.Join(dir, KernelFile)
	}
	if c.InitrdPath != "" {
		os.Initrd = path.Join(dir, InitrdFile)
	}
	os.Cmdline = kb.KernelArgs
	out.artifacts = append(out.artifacts, a)
}

// kernelImage checks the kernel container image: an OCI image layout or an
// image archive (docker-archive:/file.tar) on the host, under
// --allowed-host-dirs, or a registry reference, which the runtime refuses
// while registry pulls are not supported. A disk file (file:///p, /p)
// holds no filesystem to take a kernel from.
func kernelImage(ctx Context, image, at string, out *output) (string, bool) {
	if strings.HasPrefix(image, "file://") || strings.HasPrefix(image, "/") {
		out.invalid(at, "%q names a disk file, not a container image; use oci:/path/to/layout[:tag] or docker-archive:/path/to/image.tar for a local image", image)
		return "", false
	}
	if file, ok := strings.CutPrefix(image, "docker-archive:"); ok {
		p, err := hostFile(ctx, file)
		if err != nil {
			out.add(diag.Error, ErrHostFileNotAllowed, at, "%v", err)
			return "", false
		}
		return "docker-archive:" + p, true
	}
	p, err := localImage(ctx, image)
	if err != nil {
		out.add(diag.Error, ErrHostFileNotAllowed, at, "%v", err)
		return "", false
	}
	return p, true
}

func cleanAbs(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && !strings.Contains(p, "/../")
}
