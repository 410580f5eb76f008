package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// pullCertLifetime bounds the client certificate of one pull: long enough
// for a large disk, short enough not to outlive its purpose.
const pullCertLifetime = 24 * time.Hour

// movedFrom is storage.Config.MovedFrom: the other node whose status
// report lists PersistentVolume pv with data. Without a status branch
// volumes never move; with one, nothing is decided before the first read
// of the reports, since a blank disk made meanwhile would hide the data.
func (rt *Runtime) movedFrom(pv string) (string, error) {
	a := rt.Agent
	if a == nil || a.fleet.Load() == nil {
		return "", nil
	}
	reports, at := a.FleetReports()
	if at.IsZero() {
		return "", errors.New("the fleet's status reports are not read yet")
	}
	o, found, err := diskmove.Locate(slices.Collect(maps.Values(reports)), rt.cfg.Node, pv, rt.cfg.NodeLease, time.Now())
	if err != nil || !found {
		return "", err
	}
	return o.Node, nil
}

// pullDisk pulls a moved volume's disk from the node that holds it, over
// mutual TLS with a client certificate of this agent's own CA.
func (rt *Runtime) pullDisk(ctx context.Context, r storage.ImportRequest) error {
	if rt.cfg.PKIDir == "" || rt.Agent == nil {
		return fmt.Errorf("PersistentVolume %s moved here from node %s, but this agent has no CA to pull it with (run it with --listen)", r.SourcePath, r.URL)
	}
	reports, _ := rt.Agent.FleetReports()
	o, found, err := diskmove.Locate(slices.Collect(maps.Values(reports)), rt.cfg.Node, r.SourcePath, rt.cfg.NodeLease, time.Now())
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("PersistentVolume %s: node %s no longer reports it", r.SourcePath, r.URL)
	}
	client, err := diskmove.Client(rt.cfg.PKIDir, rt.cfg.Node, o, pullCertLifetime)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	if err := (&diskmove.Puller{Client: client, Log: rt.cfg.Log, JournalDir: filepath.Join(rt.cfg.StateDir, "diskmove")}).Pull(ctx, o.URL+api.DisksPrefix, r.SourcePath, r.Target); err != nil {
		return fmt.Errorf("pull PersistentVolume %s from node %s: %w", r.SourcePath, o.Node, err)
	}
	return nil
}

// released is storage.Config.Released: the copy here of PersistentVolume
// pv, which moved away, may go once the node that now reports it bound
// runs every VM that used it here.
func (rt *Runtime) released(pv string, vms []string) (bool, string) {
	a := rt.Agent
	if a == nil {
		return false, ""
	}
	reports, _ := a.FleetReports()
	to := ""
	for _, node := range slices.Sorted(maps.Keys(reports)) {
		if node == rt.cfg.Node {
			continue
		}
		if slices.ContainsFunc(reports[node].Volumes, func(v fleet.Volume) bool {
			return v.Kind == "PersistentVolume" && v.Name == pv && v.Phase == "Bound"
		}) {
			to = node
			break
		}
	}
	if to == "" {
		return false, "kept until the node it moved to reports it bound"
	}
	if len(vms) == 0 {
		return false, "kept: no VM used it here, so nothing tells when node " + to + " no longer needs this copy"
	}
	list := slices.Collect(maps.Values(reports))
	for _, vm := range vms {
		_, ref, _ := strings.Cut(vm, " ") // "VirtualMachine ns/name"
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			return false, "kept: cannot tell which VM " + vm + " is"
		}
		if ok, why := diskmove.Released(list, to, ns, name); !ok {
			return false, why
		}
	}
	return true, ""
}
