package manifests

import (
	"path"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// HCO's defaults for unset certConfig durations.
const (
	defaultCADuration        = 48 * time.Hour
	defaultCARenewBefore     = 24 * time.Hour
	defaultServerDuration    = 24 * time.Hour
	defaultServerRenewBefore = 12 * time.Hour
	minCertDuration          = 10 * time.Minute
)

// WithDefaults returns the certConfig with HCO's defaults filled in for unset
// values (CA 48h/24h, server 24h/12h). A nil config is all defaults.
func (c *HyperConvergedCertConfig) WithDefaults() HyperConvergedCertConfig {
	var out HyperConvergedCertConfig
	if c != nil {
		out = *c
	}
	fill := func(d **metav1.Duration, def time.Duration) {
		if *d == nil {
			*d = &metav1.Duration{Duration: def}
		}
	}
	fill(&out.CA.Duration, defaultCADuration)
	fill(&out.CA.RenewBefore, defaultCARenewBefore)
	fill(&out.Server.Duration, defaultServerDuration)
	fill(&out.Server.RenewBefore, defaultServerRenewBefore)
	return out
}

// validateHyperConverged checks certConfig like the HCO webhook: values after
// defaulting, and only the first conflict is reported (seed 8.14.3 says the
// error message shows only the first).
func validateHyperConverged(o *Object, hc *HyperConverged) diag.List {
	v := &validator{o: o}
	cc := hc.Spec.CertConfig.WithDefaults()
	p := "spec.certConfig"
	if _, v1 := o.pos["spec.security.certConfig"]; v1 {
		p = "spec.security.certConfig" // hco.kubevirt.io/v1's place
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{p + ".ca.duration", cc.CA.Duration.Duration},
		{p + ".ca.renewBefore", cc.CA.RenewBefore.Duration},
		{p + ".server.duration", cc.Server.Duration.Duration},
		{p + ".server.renewBefore", cc.Server.RenewBefore.Duration},
	} {
		if f.d < minCertDuration {
			v.failf(f.path, ErrCertDurationTooSmall, "%s is less than %s", f.d, minCertDuration)
			return v.diags
		}
	}
	switch {
	case cc.CA.Duration.Duration < cc.CA.RenewBefore.Duration:
		v.fail(p+".ca.renewBefore", ErrCertCARenewBefore)
	case cc.Server.Duration.Duration < cc.Server.RenewBefore.Duration:
		v.fail(p+".server.renewBefore", ErrCertServerRenewBefore)
	case cc.CA.Duration.Duration < cc.Server.Duration.Duration:
		v.fail(p+".server.duration", ErrCertCAServer)
	}
	return v.diags
}

// validateHostPathProvisioner keeps volumes off the root file system's top
// directory (seed 8.18.2) and out of system directories: the provisioner
// creates and, with reclaim policy Delete, removes directories there.
func validateHostPathProvisioner(o *Object, hpp *HostPathProvisioner, stateDir string) diag.List {
	v := &validator{o: o}
	check := func(at, dir string) {
		switch {
		case !path.IsAbs(dir) || path.Clean(dir) == "/":
			v.failf(at, ErrHostPathRoot, "got %q", dir)
		case path.Clean(dir) != dir:
			v.failf(at, ErrHostPathNotClean, "got %q, write %q", dir, path.Clean(dir))
		default:
			if sys := systemDir(dir, stateDir); sys != "" {
				v.failf(at, ErrHostPathSystem, "%s is %s", dir, sys)
			}
		}
	}
	if pc := hpp.Spec.PathConfig; pc != nil {
		check("spec.pathConfig.path", pc.Path)
	}
	for i, sp := range hpp.Spec.StoragePools {
		check(joinIndex("spec.storagePools", i)+".path", sp.Path)
	}
	return v.diags
}

// systemDirs may not hold volumes, nor anything below them: pseudo file
// systems, the OS itself, and other agents' state. Functions rather than
// package variables, so nothing can change them at run time.
func systemDirs() []string {
	return []string{
		"/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin", "/sbin",
		"/lib", "/lib32", "/lib64", "/libx32", "/root", "/efi",
		"/var/run", "/var/lib/libvirt", "/var/lib/nodevirt", "/var/log", "/var/lib/dpkg", "/var/lib/rpm",
	}
}

// parentDirs may hold a volume directory below them but are not one.
func parentDirs() []string {
	return []string{"/var", "/var/lib", "/home", "/opt", "/srv", "/mnt", "/media", "/tmp", "/var/tmp"}
}

// systemDir says which system directory dir is or lies in ("" for none).
func systemDir(dir, stateDir string) string {
	in := func(d, sys string) bool { return d == sys || strings.HasPrefix(d, sys+"/") }
	for _, sys := range systemDirs() {
		if in(dir, sys) {
			return "a system directory (" + sys + ")"
		}
	}
	if stateDir != "" && path.IsAbs(stateDir) && path.Clean(stateDir) != "/" && in(dir, path.Clean(stateDir)) {
		return "nodevirt's state directory (" + path.Clean(stateDir) + ")"
	}
	for _, p := range parentDirs() {
		if dir == p {
			return "a system directory (" + p + "); use a directory below it"
		}
	}
	return ""
}
