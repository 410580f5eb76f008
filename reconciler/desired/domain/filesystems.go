package domain

import (
	"fmt"
	"path"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/internal/pathelem"
)

// virtiofsQueue is the request queue size KubeVirt gives virtiofs devices.
const virtiofsQueue = 1024

// configureFilesystems owns the <filesystem> elements and the SharedDir
// artifacts behind them: each domain.devices.filesystems entry shares the
// directory of its volume with the guest over virtiofs, which mounts it by
// the filesystem's name (the <target dir> tag), as under KubeVirt. libvirt
// starts virtiofsd (Context.Virtiofsd) for each; configureMemoryBacking
// makes guest memory shared, which vhost-user devices need.
func configureFilesystems(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	fss := in.Spec.Domain.Devices.Filesystems
	if len(fss) == 0 {
		return
	}
	if ctx.Virtiofsd == "" {
		out.refuse("domain.devices.filesystems", "virtiofsd is not installed on this host (looked for /usr/libexec/virtiofsd of package virtiofsd and /usr/lib/qemu/virtiofsd of Debian 12's qemu-system-common); libvirt needs it to share a directory with the guest")
		return
	}
	volumes := make(map[string]int, len(in.Spec.Volumes))
	for i, v := range in.Spec.Volumes {
		volumes[v.Name] = i
	}
	for i, fs := range fss {
		rel := fmt.Sprintf("domain.devices.filesystems[%d]", i)
		if fs.Virtiofs == nil {
			out.invalid(rel, "no filesystem type: set virtiofs: {}")
			continue
		}
		vi, ok := volumes[fs.Name]
		if !ok {
			out.invalid(rel+".name", "no volume named %q", fs.Name)
			continue
		}
		dir, claim, ok := sharedDir(in, ctx, vi, out)
		if !ok {
			continue
		}
		devices(dom).Filesystems = append(devices(dom).Filesystems, libvirtxml.DomainFilesystem{
			AccessMode: "passthrough",
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs", Queue: virtiofsQueue},
			Binary:     &libvirtxml.DomainFilesystemBinary{Path: ctx.Virtiofsd},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: dir}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: fs.Name},
			Alias:      userAlias(fs.Name),
		})
		out.artifacts = append(out.artifacts, Artifact{Kind: SharedDir, Volume: fs.Name, Path: dir, Claim: claim})
	}
}

// sharedDir is the host directory behind volume vi of a filesystem: a
// claim's (or DataVolume's) directory, the root of its filesystem as the
// claim's mount is under KubeVirt.
func sharedDir(in Input, ctx Context, vi int, out *output) (dir, claim string, ok bool) {
	v := in.Spec.Volumes[vi]
	rel := fmt.Sprintf("volumes[%d]", vi)
	var at string
	switch {
	case v.PersistentVolumeClaim != nil:
		claim, at = v.PersistentVolumeClaim.ClaimName, rel+".persistentVolumeClaim.claimName"
	case v.DataVolume != nil:
		claim, at = v.DataVolume.Name, rel+".dataVolume.name"
	case v.ConfigMap != nil, v.Secret != nil, v.ServiceAccount != nil, v.DownwardAPI != nil:
		out.refuse(rel, "virtiofs shares of ConfigMap, Secret, ServiceAccount and DownwardAPI volumes are not supported yet; attach the volume as a disk instead")
		return "", "", false
	default:
		out.invalid(rel, "volume %q cannot back a virtiofs filesystem: only persistentVolumeClaim and dataVolume volumes are directories", v.Name)
		return "", "", false
	}
	if cd, bound := in.Resources.Claims[claim]; bound && cd.Path != "" {
		if cd.Block {
			out.invalid(at, "claim %q is a block device (volumeMode Block); virtiofs shares a directory, so it needs a Filesystem claim", claim)
			return "", "", false
		}
		return path.Dir(cd.Path), claim, true
	}
	dir, err := pathelem.Join(ctx.VolumeDir, in.Namespace, claim)
	if err != nil {
		out.invalid(at, "the claim's namespace or name cannot be a directory on the host: %v", err)
		return "", "", false
	}
	return dir, claim, true
}

// sharesMemory reports whether the guest's memory must be shared with
// another process (virtiofsd), as vhost-user devices need.
func sharesMemory(in Input) bool {
	return len(in.Spec.Domain.Devices.Filesystems) > 0
}
