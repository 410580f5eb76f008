package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// RecordVersion is the layout version of the state record.
const RecordVersion = 1

// Paths in the state directory.
const (
	recordPath = "/record.json"
	origDir    = "/orig"
)

// Record is what nodevirt applied to the host: the files it wrote (and
// whether an original was there), the units it enabled, masked and ran,
// the kernel arguments it owns and the devices it bound. Versioned, so a
// restarted (or upgraded) agent re-adopts what it did.
type Record struct {
	Version  int                     `json:"version"`
	Revision string                  `json:"revision,omitempty"`
	Files    map[string]FileRecord   `json:"files,omitempty"`
	Units    map[string]UnitRecord   `json:"units,omitempty"`
	Kargs    []string                `json:"kernelArguments,omitempty"`
	Backend  string                  `json:"kernelArgumentBackend,omitempty"`
	Devices  map[string]DeviceRecord `json:"devices,omitempty"`
	// Resources are every permitted PCI resource name ever applied, so a
	// resource removed from the permitted list still shows with 0.
	Resources []string `json:"resources,omitempty"`
	// Reboot is set when boot-time configuration changed during this boot.
	Reboot *RebootRecord `json:"reboot,omitempty"`
}

// FileRecord is one path nodevirt wrote.
type FileRecord struct {
	Object string `json:"object"`
	// Kind is file, unit or dropin.
	Kind   string      `json:"kind"`
	Unit   string      `json:"unit,omitempty"`
	SHA256 string      `json:"sha256"`
	Mode   fs.FileMode `json:"mode"`
	UID    int         `json:"uid"`
	GID    int         `json:"gid"`
	// Original is true when a file was there before nodevirt first wrote
	// the path; it was saved and is restored when the path leaves the source.
	Original bool `json:"original"`
}

// UnitRecord is what nodevirt did to one unit.
type UnitRecord struct {
	Object  string `json:"object"`
	Enabled *bool  `json:"enabled,omitempty"`
	Masked  bool   `json:"masked,omitempty"`
	// Ran is the hash of the unit (contents and drop-ins) last started
	// successfully, or left to start at boot; then AtBoot is the boot ID
	// it was left in (the unit runs when the host next boots).
	Ran    string `json:"ran,omitempty"`
	AtBoot string `json:"atBoot,omitempty"`
}

// DeviceRecord is a device nodevirt bound at run time.
type DeviceRecord struct {
	Object   string `json:"object"`
	ID       string `json:"id"`
	Previous string `json:"previousDriver,omitempty"`
}

// RebootRecord says which boot a reboot is required after.
type RebootRecord struct {
	BootID  string   `json:"bootID"`
	Reasons []string `json:"reasons"`
}

func newRecord() Record {
	return Record{Version: RecordVersion, Files: map[string]FileRecord{}, Units: map[string]UnitRecord{}, Devices: map[string]DeviceRecord{}}
}

func (r Record) clone() Record {
	b, _ := json.Marshal(r)
	out := newRecord()
	_ = json.Unmarshal(b, &out)
	if out.Files == nil {
		out.Files = map[string]FileRecord{}
	}
	if out.Units == nil {
		out.Units = map[string]UnitRecord{}
	}
	if out.Devices == nil {
		out.Devices = map[string]DeviceRecord{}
	}
	return out
}

// LoadRecord reads the record from a state directory; a missing record is
// an empty one.
func LoadRecord(state Files) (Record, error) {
	b, err := state.ReadFile(recordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return newRecord(), nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("read host state record: %w", err)
	}
	r := newRecord()
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("read host state record: %w", err)
	}
	if r.Version > RecordVersion {
		return Record{}, fmt.Errorf("host state record has version %d; this nodevirt reads up to %d", r.Version, RecordVersion)
	}
	return r.clone(), nil
}

func saveRecord(state Files, r Record) error {
	r.Version = RecordVersion
	sort.Strings(r.Resources)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFile(recordPath, append(b, '\n'), 0o600, 0, 0); err != nil {
		return fmt.Errorf("write host state record: %w", err)
	}
	return nil
}

// backup is an original file, saved before nodevirt first wrote its path.
type backup struct {
	Existed bool        `json:"existed"`
	Link    string      `json:"link,omitempty"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	Data    []byte      `json:"data,omitempty"`
}

func backupPath(p string) string { return path.Join(origDir, p) + ".json" }

func saveBackup(state Files, p string, st FileState) error {
	b, err := json.Marshal(backup{Existed: st.Exists, Link: st.Link, Mode: st.Mode, UID: st.UID, GID: st.GID, Data: st.Data})
	if err != nil {
		return err
	}
	if err := state.WriteFile(backupPath(p), b, 0o600, 0, 0); err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	return nil
}

func loadBackup(state Files, p string) (FileState, bool, error) {
	b, err := state.ReadFile(backupPath(p))
	if errors.Is(err, fs.ErrNotExist) {
		return FileState{}, false, nil
	}
	if err != nil {
		return FileState{}, false, fmt.Errorf("read backup of %s: %w", p, err)
	}
	var bk backup
	if err := json.Unmarshal(b, &bk); err != nil {
		return FileState{}, false, fmt.Errorf("read backup of %s: %w", p, err)
	}
	return FileState{Exists: bk.Existed, Link: bk.Link, Mode: bk.Mode, UID: bk.UID, GID: bk.GID, Data: bk.Data}, true, nil
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
