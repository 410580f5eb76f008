package storage

import (
	"fmt"
	"maps"
	"slices"
)

// Decoders check the records of the buckets this package owns, for
// `nodevirt state check`.
func Decoders() map[string]func(key string, val []byte) error {
	return map[string]func(string, []byte) error{
		bucketClasses: func(k string, v []byte) error { _, err := decode[classRecord](v, "storage class "+k); return err },
		bucketVolumes: func(k string, v []byte) error { _, err := decode[volumeRecord](v, "volume "+k); return err },
		bucketClaims:  func(k string, v []byte) error { _, err := decode[claimRecord](v, "claim "+k); return err },
	}
}

// Rebuilt is what RebuildFromMarkers restored and what it could not.
type Rebuilt struct {
	// Claims are the DataVolumes restored as succeeded, with their disks.
	Claims map[string]string `json:"claims,omitempty"`
	// Skipped are index entries not restored, with the reason.
	Skipped map[string]string `json:"skipped,omitempty"`
}

// RebuildFromMarkers restores the claim and volume records of completed
// imports from the marker index (entry name -> contents, as read from
// IndexDir), each checked against the marker next to its disk and the disk
// itself. kv should be a new, empty database. What markers cannot say
// (storage classes as first used, plain claims, imports that had not
// finished) is taken from the source at the next apply, where existing disks
// are adopted by their markers or left alone.
func RebuildFromMarkers(kv KV, files Files, index map[string][]byte) (Rebuilt, error) {
	out := Rebuilt{Claims: map[string]string{}, Skipped: map[string]string{}}
	m := &Manager{files: files, kv: kv, volumeRecs: map[string]*volumeRecord{}, claimRecs: map[string]*claimRecord{}, classRecs: map[string]*classRecord{}}
	for _, name := range slices.Sorted(maps.Keys(index)) {
		mk, err := decodeMarker(index[name], name)
		if err != nil {
			out.Skipped[name] = err.Error()
			continue
		}
		next, err := m.readMarker(mk.File)
		switch {
		case err != nil:
			out.Skipped[mk.Claim] = err.Error()
			continue
		case next == nil:
			out.Skipped[mk.Claim] = fmt.Sprintf("%s has no marker next to it (moved or re-imported)", mk.File)
			continue
		case next.Claim != mk.Claim || next.Hash != mk.Hash:
			out.Skipped[mk.Claim] = fmt.Sprintf("the marker next to %s names %s, not this claim", mk.File, next.Object)
			continue
		}
		if size, err := files.Size(mk.File); err != nil || size < mk.Size {
			out.Skipped[mk.Claim] = fmt.Sprintf("%s is missing or smaller than when its import finished", mk.File)
			continue
		}
		if mk.Volume == nil {
			out.Skipped[mk.Claim] = "the marker records no volume"
			continue
		}
		vr := *mk.Volume
		vr.Claim, vr.Phase = mk.Claim, VolumeBound
		if err := m.putVolume(&vr); err != nil {
			return out, err
		}
		r := &claimRecord{Key: mk.Claim, Object: mk.Object, Owner: mk.Owner, Hash: mk.Hash, Volume: vr.Name, Path: mk.Path, Block: mk.Block,
			Phase: PhaseSucceeded, Progress: 100, Reason: "Completed", Message: "Import Complete (restored by `nodevirt state rebuild` from its marker)",
			Finished: mk.Finished, Result: mk.Result}
		if err := m.putClaim(r); err != nil {
			return out, err
		}
		out.Claims[mk.Claim] = mk.File
	}
	return out, nil
}
