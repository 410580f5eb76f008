// Package staterepair checks the agent's state database and rebuilds it
// when it is lost or damaged: from its backup, or from what outlives it —
// the marker files nodevirt writes next to completed imports, and the owner
// metadata libvirt keeps on every domain nodevirt defined.
package staterepair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/hotplug"
	"github.com/nodevirt/nodevirt/reconciler/snapshot"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/runtime/volumes"
)

// DBPath is the state database in stateDir.
func DBPath(stateDir string) string { return filepath.Join(stateDir, "state.db") }

// decoders are every package's record checks.
func decoders() map[string]statedb.Decoder {
	out := map[string]statedb.Decoder{}
	for _, m := range []map[string]func(string, []byte) error{vm.Decoders(), storage.Decoders(), hotplug.Decoders(), snapshot.Decoders()} {
		for b, d := range m {
			out[b] = d
		}
	}
	return out
}

// Check verifies the state database of stateDir and its backup.
func Check(stateDir string) (*statedb.Report, error) {
	return statedb.Check(DBPath(stateDir), decoders())
}

// Domains lists libvirt's domains.
type Domains interface {
	Domains(ctx context.Context) ([]hv.Domain, error)
}

// Options say how to rebuild.
type Options struct {
	StateDir string
	// FromBackup restores the backup instead of rebuilding from markers
	// and libvirt.
	FromBackup bool
	// Domains is libvirt; nil skips the domains (FromBackup needs none).
	Domains Domains
	Now     func() time.Time
}

// Domain is a domain nodevirt owns, as libvirt's metadata says.
type Domain struct {
	Name     string `json:"name"`
	Object   string `json:"object"`
	Revision string `json:"revision,omitempty"`
	SpecHash string `json:"specHash,omitempty"`
	Active   bool   `json:"active"`
}

// Result is what Rebuild did.
type Result struct {
	// MovedAside is where the old database went ("" if there was none);
	// BackupKept where the old backup was copied.
	MovedAside string `json:"movedAside,omitempty"`
	BackupKept string `json:"backupKept,omitempty"`
	// Restored is the backup restored (FromBackup).
	Restored string          `json:"restored,omitempty"`
	Storage  storage.Rebuilt `json:"storage"`
	Domains  []Domain        `json:"domains,omitempty"`
	// NotRebuilt says what the next apply takes from the source instead.
	NotRebuilt []string `json:"notRebuilt,omitempty"`
}

// Rebuild moves the state database aside (state.db.damaged-<time>; nothing
// is deleted) and makes a new one. An agent must not be running on the
// state directory: a locked database is refused.
func Rebuild(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	path := DBPath(o.StateDir)
	bak := statedb.BackupPath(path)
	res := &Result{}
	rep, err := statedb.Check(path, nil)
	if err != nil {
		return nil, err
	}
	if rep.Locked {
		return nil, fmt.Errorf("rebuild %s: %w; stop the agent first", path, statedb.ErrLocked)
	}
	if o.FromBackup && (rep.Backup == nil || !rep.Backup.OK) {
		why := "there is none"
		if rep.Backup != nil {
			why = rep.Backup.Damage
		}
		return nil, fmt.Errorf("restore %s: the backup cannot be used (%s); rebuild without --from-backup", bak, why)
	}
	stamp := o.Now().UTC().Format("20060102T150405Z")
	if _, err := os.Lstat(path); err == nil {
		res.MovedAside = path + ".damaged-" + stamp
		if err := os.Rename(path, res.MovedAside); err != nil {
			return nil, fmt.Errorf("move %s aside: %w", path, err)
		}
	}
	if _, err := os.Stat(bak); err == nil {
		// The new database's first backup replaces this one: keep it.
		res.BackupKept = bak + "-" + stamp
		if err := copyFile(bak, res.BackupKept); err != nil {
			return nil, err
		}
	}
	if o.FromBackup {
		if err := copyFile(bak, path); err != nil {
			return nil, err
		}
		db, err := statedb.Open(path)
		if err != nil {
			return nil, err
		}
		res.Restored = bak
		return res, db.Close()
	}
	db, err := statedb.Create(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	index, err := readIndex(storage.IndexDir(o.StateDir))
	if err != nil {
		return nil, err
	}
	if res.Storage, err = storage.RebuildFromMarkers(db, volumes.Files{}, index); err != nil {
		return nil, err
	}
	if o.Domains != nil {
		doms, err := o.Domains.Domains(ctx)
		if err != nil {
			return nil, fmt.Errorf("list libvirt domains: %w", err)
		}
		for _, d := range doms {
			if ow, ok := desired.OwnerOf(d.XML); ok {
				res.Domains = append(res.Domains, Domain{Name: d.Name, Object: fmt.Sprintf("%s %s/%s", ow.Kind, ow.Namespace, ow.Name),
					Revision: ow.Revision, SpecHash: ow.SpecHash, Active: d.State.Active()})
			}
		}
	}
	res.NotRebuilt = []string{
		"VM records: each domain above is adopted again at the next apply while the source still has its VirtualMachine; one the source no longer has is left alone, not deleted (remove it with virsh if it should go)",
		"dedicated-CPU and PCI device allocations, and the run history of runStrategy Once: taken again at the next apply",
		"storage classes as first used, plain claims and imports that had not finished: taken from the source at the next apply, where existing disks are adopted by their markers or left alone with a message",
		"the last applied revision",
	}
	return res, db.Close()
}

// readIndex reads the marker index; a missing one is empty.
func readIndex(dir string) (map[string][]byte, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read marker index: %w", err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := volumes.Files{}.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[filepath.Join(dir, e.Name())] = b
	}
	return out, nil
}

// copyFile copies src to dst through a temporary file and a rename.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	err = atomicfile.Write(dst, 0o600, func(out *os.File) error {
		_, err := io.Copy(out, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// Sorted lists a report's bucket names in order, for printing.
func Sorted(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }
