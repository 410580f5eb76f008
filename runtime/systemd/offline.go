package systemd

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// Unit directories in systemd's search order (system units).
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

const etcUnits = "/etc/systemd/system"

// findUnit returns the path of the unit file that defines name (for an
// instance, its template), skipping /dev/null masks.
func (m *Manager) findUnit(name string) (string, error) {
	cands := []string{name}
	if at := strings.Index(name, "@"); at >= 0 {
		if dot := strings.LastIndex(name, "."); dot > at+1 {
			cands = append(cands, name[:at+1]+name[dot:])
		}
	}
	for _, c := range cands {
		for _, d := range unitDirs {
			p := path.Join(d, c)
			st, err := m.fs.Lstat(p)
			if err != nil {
				continue
			}
			if st.Mode()&fs.ModeSymlink != 0 {
				if t, _ := m.fs.Readlink(p); t == "/dev/null" {
					continue
				}
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("unit %s: %w", name, fs.ErrNotExist)
}

type install struct {
	wantedBy, requiredBy, upheldBy, alias, also []string
}

func (i install) empty() bool {
	return len(i.wantedBy)+len(i.requiredBy)+len(i.upheldBy)+len(i.alias)+len(i.also) == 0
}

func (m *Manager) installOf(p string) (install, error) {
	var in install
	data, err := m.fs.ReadFile(p)
	if err != nil {
		return in, err
	}
	opts, err := unit.DeserializeOptions(strings.NewReader(string(data)))
	if err != nil {
		return in, fmt.Errorf("parse %s: %w", p, err)
	}
	for _, o := range opts {
		if o.Section != "Install" {
			continue
		}
		v := strings.Fields(o.Value)
		switch o.Name {
		case "WantedBy":
			in.wantedBy = append(in.wantedBy, v...)
		case "RequiredBy":
			in.requiredBy = append(in.requiredBy, v...)
		case "UpheldBy":
			in.upheldBy = append(in.upheldBy, v...)
		case "Alias":
			in.alias = append(in.alias, v...)
		case "Also":
			in.also = append(in.also, v...)
		}
	}
	return in, nil
}

// links returns the symlinks enabling creates: path -> target.
func links(name, unitPath string, in install) map[string]string {
	out := map[string]string{}
	for _, t := range in.wantedBy {
		out[path.Join(etcUnits, t+".wants", name)] = unitPath
	}
	for _, t := range in.requiredBy {
		out[path.Join(etcUnits, t+".requires", name)] = unitPath
	}
	for _, t := range in.upheldBy {
		out[path.Join(etcUnits, t+".upholds", name)] = unitPath
	}
	for _, a := range in.alias {
		out[path.Join(etcUnits, a)] = unitPath
	}
	return out
}

func (m *Manager) masked(name string) bool {
	for _, d := range []string{etcUnits, "/run/systemd/system"} {
		if t, err := m.fs.Readlink(path.Join(d, name)); err == nil && t == "/dev/null" {
			return true
		}
	}
	return false
}

func (m *Manager) offlineState(name string) (string, error) {
	if m.masked(name) {
		return "masked", nil
	}
	p, err := m.findUnit(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "not-found", nil
	}
	if err != nil {
		return "", err
	}
	in, err := m.installOf(p)
	if err != nil {
		return "", err
	}
	if in.empty() {
		return "static", nil
	}
	for l := range links(name, p, in) {
		if _, err := m.fs.Lstat(l); err == nil {
			return "enabled", nil
		}
	}
	return "disabled", nil
}

func (m *Manager) offlineEnable(name string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("enable %s: Also= chain too long", name)
	}
	p, err := m.findUnit(name)
	if err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	in, err := m.installOf(p)
	if err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	for l, target := range links(name, p, in) {
		if err := m.fs.Symlink(target, l); err != nil {
			return fmt.Errorf("enable %s: %w", name, err)
		}
	}
	for _, also := range in.also {
		if err := m.offlineEnable(also, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) offlineDisable(name string) error {
	ents, err := m.fs.ReadDir(etcUnits)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disable %s: %w", name, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		n := e.Name()
		if strings.HasSuffix(n, ".wants") || strings.HasSuffix(n, ".requires") || strings.HasSuffix(n, ".upholds") {
			if err := m.fs.Remove(path.Join(etcUnits, n, name)); err != nil {
				return fmt.Errorf("disable %s: %w", name, err)
			}
		}
	}
	// Aliases: links in /etc/systemd/system that point at the unit.
	if p, err := m.findUnit(name); err == nil {
		if in, err := m.installOf(p); err == nil {
			for _, a := range in.alias {
				if t, err := m.fs.Readlink(path.Join(etcUnits, a)); err == nil && path.Base(t) == name {
					if err := m.fs.Remove(path.Join(etcUnits, a)); err != nil {
						return fmt.Errorf("disable %s: %w", name, err)
					}
				}
			}
		}
	}
	return nil
}

func (m *Manager) offlineMask(name string) error {
	p := path.Join(etcUnits, name)
	if st, err := m.fs.Lstat(p); err == nil && st.Mode().IsRegular() {
		return fmt.Errorf("mask %s: %s is a unit file; remove it first", name, p)
	}
	return m.fs.Symlink("/dev/null", p)
}

func (m *Manager) offlineUnmask(name string) error {
	for _, d := range []string{etcUnits, "/run/systemd/system"} {
		p := path.Join(d, name)
		if t, err := m.fs.Readlink(p); err == nil && t == "/dev/null" {
			if err := m.fs.Remove(p); err != nil {
				return fmt.Errorf("unmask %s: %w", name, err)
			}
		}
	}
	return nil
}
