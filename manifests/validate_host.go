package manifests

import (
	"path"
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
	const p = "spec.certConfig"
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
// directory (seed 8.18.2).
func validateHostPathProvisioner(o *Object, hpp *HostPathProvisioner) diag.List {
	v := &validator{o: o}
	check := func(at, dir string) {
		if !path.IsAbs(dir) || path.Clean(dir) == "/" {
			v.failf(at, ErrHostPathRoot, "got %q", dir)
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
