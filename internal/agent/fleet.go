package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/status"
)

// FleetOptions configure the node's report on the fleet's status branch.
type FleetOptions struct {
	// Node names the report (nodes/<Node>.json).
	Node   string
	Branch *fleet.Branch
	// Interval is the most often a report is pushed, and how often the
	// other nodes' reports are read.
	Interval time.Duration
	// Heartbeat is the longest the branch goes without a report from this
	// node when nothing in it changed (Interval when zero or shorter): a
	// commit per node per interval would grow the branch's history
	// without end for nothing but a new timestamp.
	Heartbeat time.Duration
	// Timeout bounds one publish and read (one minute when zero).
	Timeout time.Duration
	// Capacity and CA fill the report's facts; either may be nil.
	Capacity func(context.Context) fleet.Capacity
	CA       func() string
	// API is the agent's HTTPS address, "" when it does not listen:
	// where other nodes pull the disks that move away from this one.
	API string
	// Published is told the outcome of every publish attempt (metrics).
	Published func(error)
}

// Fleet publishes the agent's report to the status branch beside the
// loop, never inside it: a slow or unreachable remote delays reports, not
// reconciles. It also keeps every node's report as last read, for
// placement.
type Fleet struct {
	a    *Agent
	o    FleetOptions
	kick chan struct{}

	mu        sync.Mutex
	published *fleet.Report // the last report that reached the branch
	st        status.StatusBranch
	reports   map[string]fleet.Report
	readAt    time.Time
}

// Fleet attaches a status-branch publisher to the agent; run it with
// Fleet.Run and tell it of each reconcile with Kick.
func (a *Agent) Fleet(o FleetOptions) (*Fleet, error) {
	if o.Branch == nil {
		return nil, errors.New("status branch: no branch")
	}
	if err := fleet.ValidNode(o.Node); err != nil {
		return nil, fmt.Errorf("status branch: %w", err)
	}
	if o.Interval <= 0 {
		return nil, fmt.Errorf("status interval %s must be positive", o.Interval)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	o.Heartbeat = max(o.Heartbeat, o.Interval)
	f := &Fleet{a: a, o: o, kick: make(chan struct{}, 1), st: status.StatusBranch{Branch: o.Branch.Name}}
	a.fleet.Store(f)
	return f, nil
}

// FleetReports are every node's reports as last read from the status
// branch (this node's included) and when they were read; nil and the zero
// time before the first read or without a status branch.
func (a *Agent) FleetReports() (map[string]fleet.Report, time.Time) {
	f := a.fleet.Load()
	if f == nil {
		return nil, time.Time{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reports, f.readAt
}

// Kick says a reconcile ended: the report may have changed.
func (f *Fleet) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *Fleet) status() *status.StatusBranch {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	return &st
}

// Run publishes until ctx ends: after a reconcile when the report changed,
// and at every interval regardless, but never twice within one interval.
// Failures are logged, recorded and retried at the next turn.
func (f *Fleet) Run(ctx context.Context) {
	tick := time.NewTicker(f.o.Interval)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-f.kick:
		}
		if wait := f.o.Interval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if f.a.Status().Source.Revision == "" {
			continue // nothing rendered yet: no report worth reading
		}
		last = time.Now()
		f.Once(ctx)
	}
}

// Once publishes the report if it changed or the heartbeat passed since the
// last publish, then reads every node's report.
func (f *Fleet) Once(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, f.o.Timeout)
	defer cancel()
	r := f.report(ctx)
	f.mu.Lock()
	due := f.published == nil || !fleet.Equal(*f.published, r) || time.Since(f.published.Time) >= f.o.Heartbeat
	f.mu.Unlock()
	if due {
		commit, err := f.o.Branch.Publish(ctx, r)
		if err != nil && parent.Err() != nil {
			return // the agent stops: not a failure to count or show
		}
		if f.o.Published != nil {
			f.o.Published(err)
		}
		f.mu.Lock()
		if err != nil {
			f.st.Error = err.Error()
		} else {
			now := time.Now().UTC()
			f.published, f.st.Error, f.st.Commit, f.st.LastPublish = &r, "", commit, &now
		}
		f.mu.Unlock()
		if err != nil {
			f.a.log.Error("status branch: publish failed; retrying at the next interval", "branch", f.o.Branch.Name, "err", err)
			f.a.Event(status.Warning, "StatusPublishFailed", "", err.Error())
			return
		}
	}
	reports, _, err := f.o.Branch.Read(ctx)
	if err != nil {
		// A bad report of another node is named but does not hide the rest.
		f.a.log.Warn("status branch: read", "branch", f.o.Branch.Name, "err", err)
	}
	if reports == nil {
		return
	}
	f.mu.Lock()
	f.reports, f.readAt, f.st.Nodes = reports, time.Now(), len(reports)
	f.mu.Unlock()
	f.a.reportsRead()
}

// report is the node's report as of the agent's status now.
func (f *Fleet) report(ctx context.Context) fleet.Report {
	var c fleet.Capacity
	if f.o.Capacity != nil {
		c = f.o.Capacity(ctx)
	}
	r := fleet.FromStatus(f.o.Node, f.a.Status(), c, time.Now())
	if f.o.CA != nil {
		r.CA = f.o.CA()
	}
	r.API = f.o.API
	// A record that cannot be read leaves the hashes out: the other nodes
	// then place the VMs afresh rather than on a guess.
	if placed, err := f.a.placed(); err == nil {
		for i, v := range r.VMs {
			if p, ok := placed[v.Namespace+"/"+v.Name]; ok && p.Node == f.o.Node {
				r.VMs[i].Placement = p.Hash
			}
		}
	}
	return r
}
