package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrUnknownDisk is an existing disk file that the state does not know and
// that carries no marker proving it is this claim's completed import: an
// import would overwrite it, so the claim waits.
var ErrUnknownDisk = errors.New("exists but nodevirt's state does not know it")

// markerVersion versions the marker files.
const markerVersion = 1

// marker is what nodevirt writes, atomically and only after an import
// succeeded, next to the disk file (<file>.nodevirt.json) and in the state
// directory's index (<state>/markers/): proof that the file is this claim's
// complete disk, so a lost or damaged state database adopts it instead of
// importing over it, and `nodevirt state rebuild` can restore the records.
// The file is removed before anything writes the disk again.
type marker struct {
	V int `json:"v"`
	// Claim is "namespace/name"; Object, Owner and Hash as in claimRecord.
	Claim  string `json:"claim"`
	Object string `json:"object"`
	Owner  string `json:"owner,omitempty"`
	Hash   string `json:"hash"`
	// File is the disk file: disk.img, or a loop device's backing file.
	File string `json:"file"`
	// Path and Block are the claim's disk as a VM uses it (the device of
	// a loop-backed volume).
	Path  string `json:"path"`
	Block bool   `json:"block,omitempty"`
	// Size is File's size when the import finished; a smaller file is not
	// the complete disk.
	Size     int64         `json:"size"`
	Checksum string        `json:"sourceChecksum,omitempty"`
	Finished time.Time     `json:"finished"`
	Result   *ImportResult `json:"result,omitempty"`
	// Volume is the binding, so a rebuild restores it.
	Volume *volumeRecord `json:"volume,omitempty"`
}

// markerPath is the marker next to a disk file.
func markerPath(file string) string { return file + ".nodevirt.json" }

// indexPath is a claim's entry in the state directory's marker index.
func (m *Manager) indexPath(key string) string {
	return IndexPath(m.cfg.StateDir, key)
}

// IndexPath is claim key's entry in the marker index under stateDir.
func IndexPath(stateDir, key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(IndexDir(stateDir), hex.EncodeToString(h[:12])+".json")
}

// IndexDir is the marker index under stateDir.
func IndexDir(stateDir string) string { return filepath.Join(stateDir, "markers") }

// diskFile is the file holding a binding's data.
func (b *Binding) diskFile() string {
	if b.Device != "" {
		return b.Backing
	}
	return b.path()
}

func decodeMarker(b []byte, where string) (*marker, error) {
	var mk marker
	if err := json.Unmarshal(b, &mk); err != nil {
		return nil, fmt.Errorf("marker %s: %w", where, err)
	}
	if mk.V != markerVersion {
		return nil, fmt.Errorf("marker %s has version %d; this nodevirt reads version %d", where, mk.V, markerVersion)
	}
	return &mk, nil
}

// readMarker reads the marker next to file; nil without one. A host
// block device has no file to put one next to ("").
func (m *Manager) readMarker(file string) (*marker, error) {
	if file == "" {
		return nil, nil
	}
	b, err := m.files.ReadFile(markerPath(file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeMarker(b, markerPath(file))
}

// writeMarker records r's completed import. Called with m.mu held.
func (m *Manager) writeMarker(r *claimRecord, file, checksum string) error {
	var size int64
	if file != "" {
		var err error
		if size, err = m.files.Size(file); err != nil {
			return err
		}
	}
	mk := marker{V: markerVersion, Claim: r.Key, Object: r.Object, Owner: r.Owner, Hash: r.Hash, File: file, Path: r.Path,
		Block: r.Block, Size: size, Checksum: checksum, Finished: r.Finished, Result: r.Result, Volume: m.volumeRecs[r.Volume]}
	b, err := json.MarshalIndent(mk, "", "  ")
	if err != nil {
		return err
	}
	if file != "" {
		if err := m.files.WriteFile(markerPath(file), b); err != nil {
			return err
		}
	}
	return m.files.WriteFile(m.indexPath(r.Key), b)
}

// dropMarker removes a claim's markers before its disk is written again or
// removed. Called with m.mu held.
func (m *Manager) dropMarker(key, file string) error {
	if file != "" {
		if err := m.files.Remove(markerPath(file)); err != nil {
			return err
		}
	}
	return m.files.Remove(m.indexPath(key))
}

// diskVerdict is what an existing disk file means for a claim about to be
// imported.
type diskVerdict int

const (
	// diskFree: nothing is there (or only holes): the import may write.
	diskFree diskVerdict = iota
	// diskOurs: an earlier attempt of this claim's import wrote it.
	diskOurs
	// diskAdopt: the file is this claim's completed import (its marker says
	// so); it is adopted, not imported again.
	diskAdopt
	// diskConflict: anything else; nothing writes it.
	diskConflict
)

// inspect decides whether claim c (record rec, nil if none) may import
// into file, the disk file of binding b. The message of a conflict names the
// file and what to do. Called with m.mu held.
func (m *Manager) inspect(c *Claim, rec *claimRecord, b *Binding) (diskVerdict, *marker, string) {
	file := b.diskFile()
	if file == "" {
		// A host block device: the operator handed it over by naming it
		// in --allowed-block-device and a PersistentVolume, as a cluster's
		// local volumes are; an import writes it as CDI would.
		return diskFree, nil, ""
	}
	if !m.files.Exists(file) {
		return diskFree, nil, ""
	}
	mk, err := m.readMarker(file)
	if err != nil {
		return diskConflict, nil, fmt.Sprintf("%s %s, and its marker cannot be read (%v): run `nodevirt state rebuild` or move the file away", file, ErrUnknownDisk, err)
	}
	if mk != nil && mk.Claim == c.Key() {
		size, err := m.files.Size(file)
		switch {
		case err != nil:
			return diskConflict, mk, fmt.Sprintf("%s: %v", file, err)
		case mk.Hash != c.Hash:
			return diskConflict, mk, fmt.Sprintf("%s holds an import of an earlier spec of %s (marker %s); the DataVolume's data cannot change after it was imported: give it a new name, or move the file away to import again",
				file, c.Object, markerPath(file))
		case size < mk.Size:
			return diskConflict, mk, fmt.Sprintf("%s is smaller (%d bytes) than when its import finished (%d bytes, marker %s): it is not the complete disk; restore it or move it away",
				file, size, mk.Size, markerPath(file))
		}
		return diskAdopt, mk, ""
	}
	if mk != nil {
		return diskConflict, mk, fmt.Sprintf("%s holds the disk of %s (marker %s), not of %s: nodevirt leaves it alone; move it away or fix the binding",
			file, mk.Object, markerPath(file), c.Object)
	}
	if rec != nil && !rec.Started.IsZero() && rec.Path == b.path() {
		return diskOurs, nil, ""
	}
	// A loop device's backing file nodevirt provisioned holds no claim's
	// data until a claim is bound to it.
	if vr := m.volumeRecs[b.Volume]; vr != nil && vr.Backing == file && vr.Phase != VolumeReleased && (vr.Claim == "" || vr.Claim == c.Key()) {
		return diskOurs, nil, ""
	}
	has, err := m.files.HasData(file)
	if err == nil && !has {
		return diskFree, nil, ""
	}
	return diskConflict, nil, fmt.Sprintf("%s %s: run `nodevirt state rebuild` or move the file away", file, ErrUnknownDisk)
}

// adopt makes a claim's record say what its marker proves: the import
// completed. Called with m.mu held.
func (m *Manager) adopt(key string, mk *marker) error {
	r := m.claimRecs[key]
	if r == nil {
		return fmt.Errorf("adopt %s: no binding recorded", key)
	}
	r.Phase, r.Progress, r.Reason = PhaseSucceeded, 100, "Completed"
	r.Message = fmt.Sprintf("Import Complete (adopted: %s carries nodevirt's marker of the completed import)", mk.File)
	r.Result, r.Finished, r.Attempts, r.Retry = mk.Result, mk.Finished, 0, time.Time{}
	return m.putClaim(r)
}
