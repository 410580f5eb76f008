package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/source"
)

// env is one command run's opened node (agent.Open), with the pieces the
// commands use by their short names.
type env struct {
	o     *options
	rt    *agent.Runtime
	src   source.Source
	facts hostfacts.Facts
	hv    *virt.Driver
	rec   *vm.Reconciler
	agent *agent.Agent
	// hostRec applies host configuration (files, units, kernel arguments).
	hostRec *host.Reconciler
	// storage provisions claims and imports DataVolumes.
	storage *storage.Manager
}

func (e *env) Close() { e.rt.Close() }

// sourceOptions: the flags that say where the manifests come from; Open
// picks the work directory.
func (o *options) sourceOptions() (source.Options, error) {
	var verify *source.Verify
	switch {
	case o.verifySignatures && o.verifyKeysDir == "":
		return source.Options{}, errors.New("--verify-signatures needs --verify-keys-dir: the directory of trusted *.asc and *.pub keys")
	case o.verifySignatures:
		verify = &source.Verify{KeysDir: o.verifyKeysDir, Mode: o.verifyMode}
	case o.verifyKeysDir != "" || o.verifyMode != source.VerifyHead:
		return source.Options{}, errors.New("--verify-keys-dir or --verify-mode is set but --verify-signatures is not: add --verify-signatures to check signatures")
	}
	return source.Options{
		Verify:      verify,
		AllowRewind: o.allowRewind,
		URL:         o.source,
		Branch:      o.branch,
		Tag:         o.tag,
		Commit:      o.commit,
		Path:        o.path,
		Timeout:     o.fetchTimeout,
		Auth: source.Auth{
			IdentityFile:   o.sshKeyFile,
			KnownHostsFile: o.knownHostsFile,
			CAFile:         o.caFile,
			Username:       o.username,
			PasswordFile:   o.passwordFile,
		},
	}, nil
}

// openConfig turns the flags into what agent.Open needs.
func (o *options) openConfig(selfHeal bool, stages agent.Stages, lock bool) (agent.OpenConfig, error) {
	for _, d := range o.allowedHostDirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) == "/" {
			return agent.OpenConfig{}, fmt.Errorf("--allowed-host-dirs %q: want an absolute directory other than /", d)
		}
	}
	for _, d := range o.allowedBlockDevices {
		if err := storage.CheckDevicePattern(d); err != nil {
			return agent.OpenConfig{}, fmt.Errorf("--allowed-block-device %w", err)
		}
	}
	if o.parallelVMs < 0 {
		return agent.OpenConfig{}, fmt.Errorf("--parallel-vms %d: want 0 (the default) or more", o.parallelVMs)
	}
	src, err := o.sourceOptions()
	if err != nil {
		return agent.OpenConfig{}, err
	}
	return agent.OpenConfig{
		Source:          src,
		StateDir:        o.stateDir,
		Root:            o.root,
		LibvirtURI:      o.libvirtURI,
		DomainType:      o.domainType,
		Node:            o.node,
		Namespace:       o.namespace,
		CPUManager:      o.cpuManager,
		ReservedCPUs:    o.reservedCPUs,
		AllowedHostDirs: o.allowedHostDirs,
		AllowedRoots:    o.allowedRoots,
		SecretsDir:      o.secretsDir,
		PKIDir:          pkiDir(o.stateDir),
		AgeKeyFile:      o.ageKeyFile,
		SelfHeal:        selfHeal,
		AllowReboot:     o.allowReboot,
		AllowPruneAll:   o.allowPruneAll,
		PruneGuardShare: o.pruneGuardShare,
		ParallelVMs:     o.parallelVMs,
		Log:             o.logger(),
		Lock:            lock,
		Stages:          stages,

		AllowedBlockDevices: o.allowedBlockDevices,
	}, nil
}

// open opens the node as oc says.
func (o *options) open(ctx context.Context, oc agent.OpenConfig) (*env, error) {
	rt, err := agent.Open(ctx, oc)
	if err != nil {
		return nil, err
	}
	return &env{o: o, rt: rt, src: rt.Source, facts: rt.Facts, hv: rt.HV, rec: rt.VMs, agent: rt.Agent,
		hostRec: rt.Host, storage: rt.Storage}, nil
}

// openSource opens only the source and host facts, without the state
// lock: enough for validate, render and the read-only host commands.
func (o *options) openSource(ctx context.Context) (*env, error) {
	oc, err := o.openConfig(true, agent.Stages{}, false)
	if err != nil {
		return nil, err
	}
	return o.open(ctx, oc)
}

// load fetches the source and renders the node once.
func (e *env) load(ctx context.Context) (source.Snapshot, *agent.Node, error) {
	return e.rt.Fetch(ctx)
}

// openAll opens every stage under the state lock; ac carries the loop's
// intervals.
func (o *options) openAll(ctx context.Context, selfHeal bool, ac agent.Config) (*env, error) {
	oc, err := o.openConfig(selfHeal, agent.AllStages, true)
	if err != nil {
		return nil, err
	}
	oc.Interval, oc.DriftInterval, oc.EventDebounce = ac.Interval, ac.DriftInterval, ac.EventDebounce
	oc.Ready, oc.OnIteration = ac.Ready, ac.OnIteration
	oc.NodeLease = ac.Desired.NodeLease
	return o.open(ctx, oc)
}

var errInvalid = errors.New("manifests are invalid")
