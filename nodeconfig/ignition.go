package nodeconfig

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/nodeconfig/cmdline"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"

	igerrors "github.com/coreos/ignition/v2/config/shared/errors"
	ign "github.com/coreos/ignition/v2/config/v3_6"
	"github.com/coreos/ignition/v2/config/v3_6/types"
	"github.com/coreos/vcontext/report"
	"github.com/vincent-petithory/dataurl"

	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig/butane"
)

// allowedPaths are the host trees configs may write files to: those a
// CoreOS host keeps writable, plus /usr/local and /opt for plain hosts.
// /boot, /proc, /sys, /dev and /usr are refused: kernel arguments go through
// the boot loader, and the rest belongs to the kernel or the OS packages.
var allowedPaths = []string{"/etc/", "/var/", "/usr/local/", "/opt/"}

// AllowedPaths returns the host trees configs may write files to.
func AllowedPaths() []string { return append([]string(nil), allowedPaths...) }

// defaultFileMode is Ignition's (and the Machine Config Daemon's) default.
const defaultFileMode fs.FileMode = 0o644

// rendered is what one config contributes.
type rendered struct {
	cfg    Config
	g      *origin
	files  []File
	units  []Unit
	kargs  []KernelArg
	absent []KernelArg
	diags  diag.List
}

// mcFields are the MachineConfig spec fields besides config.
type mcFields struct {
	KernelArguments []string
	Extensions      []string
	FIPS            bool
	KernelType      string
	OSImageURL      string
}

// convert parses an Ignition config and the MachineConfig fields next to it.
func convert(g *origin, raw json.RawMessage, mc mcFields) *rendered {
	r := &rendered{g: g}
	r.checkSpec(mc)
	for i, k := range mc.KernelArguments {
		for _, a := range cmdline.Split(k) {
			r.kargs = append(r.kargs, KernelArg{Value: a, Source: g.source(g.spec(fmt.Sprintf("kernelArguments[%d]", i)))})
		}
	}
	if emptyConfig(raw) {
		return r
	}
	if version, ok := spec2Version(raw); ok {
		if raw, ok = r.translateSpec2(raw, version); !ok {
			return r
		}
	}
	cfg, rep, err := ign.ParseCompatibleVersion(raw)
	if err != nil || rep.IsFatal() {
		r.ignitionErrors(rep, err)
		r.checkDraft(raw)
		return r
	}
	g.recordNames(cfg)
	for _, e := range rep.Entries {
		if e.Kind == report.Warn {
			p := g.ign(butane.Path(e.Context))
			r.diags = append(r.diags, g.diag(diag.Warning, p, fmt.Errorf("%w: %s", ErrIgnition, e.Message)))
		}
	}
	r.checkUnsupported(cfg)
	r.convertFiles(cfg.Storage.Files)
	r.convertUnits(cfg.Systemd.Units)
	for i, a := range cfg.KernelArguments.ShouldExist {
		r.kargs = append(r.kargs, KernelArg{Value: string(a), Source: g.source(g.ign(fmt.Sprintf("kernelArguments.shouldExist[%d]", i)))})
	}
	for i, a := range cfg.KernelArguments.ShouldNotExist {
		r.absent = append(r.absent, KernelArg{Value: string(a), Source: g.source(g.ign(fmt.Sprintf("kernelArguments.shouldNotExist[%d]", i)))})
	}
	return r
}

func (g *origin) recordNames(cfg types.Config) {
	g.filePaths, g.unitNames = nil, nil
	for _, f := range cfg.Storage.Files {
		g.filePaths = append(g.filePaths, f.Path)
	}
	for _, u := range cfg.Systemd.Units {
		g.unitNames = append(g.unitNames, u.Name)
	}
}

// checkDraft runs nodevirt's own checks on a config that failed validation
// (Ignition's or Butane's), so that one pass reports both what the
// validator found and what nodevirt would refuse once that is fixed. What
// it renders is dropped: the config is invalid. A finding on a field an
// earlier error already names (or on one inside it, or around it) is left
// out, so a field is reported once.
func (r *rendered) checkDraft(raw json.RawMessage) {
	var cfg types.Config
	if json.Unmarshal(raw, &cfg) != nil {
		return // not even JSON of the right shape: the validator said why
	}
	r.g.recordNames(cfg)
	draft := &rendered{g: r.g}
	draft.checkUnsupported(cfg)
	draft.convertFiles(cfg.Storage.Files)
	draft.convertUnits(cfg.Systemd.Units)
	var seen []string
	for _, d := range r.diags {
		if d.Severity == diag.Error {
			seen = append(seen, d.Path)
		}
	}
	for _, d := range draft.diags {
		if !overlaps(seen, d.Path) {
			r.diags = append(r.diags, d)
		}
	}
}

// overlaps: p is one of paths, inside one, or around one.
func overlaps(paths []string, p string) bool {
	within := func(a, b string) bool { // a is b or inside it
		return a == b || b == "" || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, q := range paths {
		if within(p, q) || within(q, p) {
			return true
		}
	}
	return false
}

// emptyConfig: no config, null or {} means no Ignition content (a
// MachineConfig may carry only kernel arguments).
func emptyConfig(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(t, &m) == nil && len(m) == 0
}

func (r *rendered) ignitionErrors(rep report.Report, err error) {
	g := r.g
	n := 0
	for _, e := range rep.Entries {
		if e.Kind != report.Error {
			continue
		}
		n++
		p := g.ign(butane.Path(e.Context))
		r.diags = append(r.diags, g.diag(diag.Error, p, fmt.Errorf("%w: %s", ErrIgnition, e.Message)))
	}
	if n > 0 {
		return
	}
	switch {
	case errors.Is(err, igerrors.ErrUnknownVersion), errors.Is(err, igerrors.ErrInvalidVersion):
		r.diags = append(r.diags, g.errorf(g.ign("ignition.version"), "%w: %v (nodevirt reads Ignition spec 2.0.0 to 2.4.0 and 3.0.0 to 3.6.0)", ErrIgnition, err))
	case err != nil:
		r.diags = append(r.diags, g.errorf(g.ign(""), "%w: %v", ErrIgnition, err))
	}
}

func (r *rendered) checkSpec(mc mcFields) {
	g := r.g
	if len(mc.Extensions) > 0 {
		r.diags = append(r.diags, g.errorf(g.spec("extensions"), "%w: OS extensions are rpm-ostree layers; install the packages with the host's package manager", ErrUnsupported))
	}
	if mc.FIPS {
		r.diags = append(r.diags, g.errorf(g.spec("fips"), "%w: FIPS mode is set when the host is installed", ErrUnsupported))
	}
	if mc.KernelType != "" && mc.KernelType != "default" {
		r.diags = append(r.diags, g.errorf(g.spec("kernelType"), "%w: kernel type %q needs an rpm-ostree kernel override", ErrUnsupported, mc.KernelType))
	}
	if mc.OSImageURL != "" {
		r.diags = append(r.diags, g.errorf(g.spec("osImageURL"), "%w: nodevirt does not rebase the host OS", ErrUnsupported))
	}
}

// checkUnsupported refuses what the Machine Config Daemon refuses
// (disks, file systems, RAID, LUKS, directories, links, appends, users)
// and remote configs.
func (r *rendered) checkUnsupported(c types.Config) {
	g := r.g
	bad := func(p, what string) {
		r.diags = append(r.diags, g.errorf(g.ign(p), "%w: %s", ErrUnsupported, what))
	}
	if len(c.Ignition.Config.Merge) > 0 {
		bad("ignition.config.merge", "remote configs are not fetched; put the config in the source")
	}
	if c.Ignition.Config.Replace.Source != nil {
		bad("ignition.config.replace", "remote configs are not fetched; put the config in the source")
	}
	if len(c.Storage.Disks) > 0 {
		bad("storage.disks", "partitioning disks is refused, as by the Machine Config Daemon")
	}
	if len(c.Storage.Raid) > 0 {
		bad("storage.raid", "RAID arrays are refused, as by the Machine Config Daemon")
	}
	if len(c.Storage.Filesystems) > 0 {
		bad("storage.filesystems", "creating file systems is refused, as by the Machine Config Daemon")
	}
	if len(c.Storage.Luks) > 0 {
		bad("storage.luks", "LUKS volumes are refused, as by the Machine Config Daemon")
	}
	if len(c.Storage.Directories) > 0 {
		bad("storage.directories", "directories are refused, as by the Machine Config Daemon; files create their parent directories")
	}
	if len(c.Storage.Links) > 0 {
		bad("storage.links", "links are refused, as by the Machine Config Daemon")
	}
	for i, f := range c.Storage.Files {
		if len(f.Append) > 0 {
			bad(fmt.Sprintf("storage.files[%d].append", i), "appending to files is refused, as by the Machine Config Daemon; give the whole file")
		}
	}
	if len(c.Passwd.Users) > 0 {
		bad("passwd.users", "nodevirt does not manage users")
	}
	if len(c.Passwd.Groups) > 0 {
		bad("passwd.groups", "nodevirt does not manage groups")
	}
}

func (r *rendered) convertFiles(files []types.File) {
	g := r.g
	for i, f := range files {
		at := fmt.Sprintf("storage.files[%d]", i)
		if msg := checkFilePath(f.Path); msg != "" {
			r.diags = append(r.diags, g.errorf(g.ign(at+".path"), "%w: %s", ErrPathNotAllowed, msg))
			continue
		}
		data, err := decodeContents(f.Contents)
		if err != nil {
			r.diags = append(r.diags, g.errorf(g.ign(at+".contents"), "%w", err))
			continue
		}
		if f.Overwrite != nil && !*f.Overwrite && len(f.Append) == 0 {
			r.diags = append(r.diags, g.warnf(g.ign(at+".overwrite"), "overwrite: false is not honoured: nodevirt, like the Machine Config Daemon, writes %s whether or not it exists", f.Path))
		}
		out := File{Path: f.Path, Mode: defaultFileMode, Contents: data, Source: g.source(g.ign(at))}
		if f.Mode != nil {
			out.Mode = fs.FileMode(*f.Mode&0o777) | specialBits(*f.Mode)
		}
		out.UID, out.GID = f.User.ID, f.Group.ID
		if f.User.Name != nil {
			out.User = *f.User.Name
		}
		if f.Group.Name != nil {
			out.Group = *f.Group.Name
		}
		r.files = append(r.files, out)
	}
}

// specialBits maps the setuid, setgid and sticky bits of a Unix mode to
// Go's fs.FileMode bits.
func specialBits(m int) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// checkFilePath returns why p may not be written, or "".
func checkFilePath(p string) string {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Sprintf("%q must be an absolute, clean path", p)
	}
	for _, a := range allowedPaths {
		if strings.HasPrefix(p, a) {
			return ""
		}
	}
	return fmt.Sprintf("%s (nodevirt writes under %s)", p, strings.Join(allowedPaths, ", "))
}

// decodeContents decodes a data: URL, gunzipping it when compressed.
func decodeContents(res types.Resource) ([]byte, error) {
	if res.Source == nil {
		return nil, nil
	}
	src := *res.Source
	if !strings.HasPrefix(src, "data:") {
		scheme, _, _ := strings.Cut(src, ":")
		return nil, fmt.Errorf("%w; got a %s: source", ErrFileSource, scheme)
	}
	du, err := dataurl.DecodeString(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFileSource, err)
	}
	data := du.Data
	if res.Compression != nil && *res.Compression != "" {
		if *res.Compression != "gzip" {
			return nil, fmt.Errorf("%w: compression %q (only gzip)", ErrUnsupported, *res.Compression)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gunzip contents: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gunzip contents: %w", err)
		}
	}
	return data, nil
}

var (
	unitName   = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)$`)
	dropinName = regexp.MustCompile(`^[^/]+\.conf$`)
)

func (r *rendered) convertUnits(units []types.Unit) {
	g := r.g
	for i, u := range units {
		at := fmt.Sprintf("systemd.units[%d]", i)
		if !unitName.MatchString(u.Name) {
			r.diags = append(r.diags, g.errorf(g.ign(at+".name"), "%w: %q (want name.service, .timer, .socket, .mount, .path, .target, ...)", ErrUnitName, u.Name))
			continue
		}
		out := Unit{Name: u.Name, Enabled: u.Enabled, Mask: u.Mask, Contents: u.Contents, Source: g.source(g.ign(at))}
		ok := true
		for j, d := range u.Dropins {
			if !dropinName.MatchString(d.Name) {
				r.diags = append(r.diags, g.errorf(g.ign(fmt.Sprintf("%s.dropins[%d].name", at, j)), "%w: drop-in %q must be a file name ending in .conf", ErrUnitName, d.Name))
				ok = false
				continue
			}
			c := ""
			if d.Contents != nil {
				c = *d.Contents
			}
			out.Dropins = append(out.Dropins, Dropin{Name: d.Name, Contents: c})
		}
		if ok {
			r.units = append(r.units, out)
		}
	}
}
