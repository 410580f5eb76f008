package host

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/nodeconfig"
)

// UnitDir is where nodevirt writes unit files and drop-ins.
const UnitDir = "/etc/systemd/system"

// entry is one path nodevirt manages: a file, a unit file or a drop-in.
type entry struct {
	path   string
	kind   string // file, unit, dropin
	unit   string
	data   []byte
	mode   fs.FileMode
	uid    *int
	gid    *int
	user   string
	group  string
	source nodeconfig.Source
}

// entries lists every path the desired config manages.
func entries(h *nodeconfig.HostConfig) []*entry {
	var out []*entry
	for i := range h.Files {
		f := &h.Files[i]
		out = append(out, &entry{path: f.Path, kind: "file", data: f.Contents, mode: f.Mode, uid: f.UID, gid: f.GID, user: f.User, group: f.Group, source: f.Source})
	}
	for i := range h.Units {
		u := &h.Units[i]
		if u.Mask != nil && *u.Mask {
			continue // a masked unit's file is the /dev/null link
		}
		if u.Contents != nil {
			out = append(out, &entry{path: path.Join(UnitDir, u.Name), kind: "unit", unit: u.Name, data: []byte(*u.Contents), mode: 0o644, source: u.Source})
		}
		for _, d := range u.Dropins {
			out = append(out, &entry{path: path.Join(UnitDir, u.Name+".d", d.Name), kind: "dropin", unit: u.Name, data: []byte(d.Contents), mode: 0o644, source: u.Source})
		}
	}
	return out
}

// unitHash covers what a unit runs: its contents and drop-ins.
func unitHash(u *nodeconfig.Unit) string {
	h := sha256.New()
	if u.Contents != nil {
		h.Write([]byte(*u.Contents))
	}
	ds := append([]nodeconfig.Dropin(nil), u.Dropins...)
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	for _, d := range ds {
		h.Write([]byte("\x00" + d.Name + "\x00" + d.Contents))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// guarded reports whether nodevirt added its SELinux guard to the unit.
func guarded(u *nodeconfig.Unit) bool {
	for _, d := range u.Dropins {
		if d.Name == nodeconfig.SELinuxGuardDropin && d.Generated != "" {
			return true
		}
	}
	return u.Contents != nil && strings.Contains(*u.Contents, "ConditionSecurity=selinux")
}

// write is what a write step of the entry puts on the host.
func (e *entry) write() *FileWrite {
	return &FileWrite{Path: e.path, Kind: e.kind, Unit: e.unit, Data: e.data, Mode: e.mode, UID: e.uid, GID: e.gid, Object: e.source.Object}
}
