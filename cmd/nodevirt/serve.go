package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/agent"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/metrics"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/token"
	"github.com/nodevirt/nodevirt/internal/web"
	"github.com/nodevirt/nodevirt/internal/webhook"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// serveOptions are run's API flags.
type serveOptions struct {
	listen        string
	webhookSecret string
	// nodeLease is how fresh a peer's report must be for the peer to
	// pull disks: the same lease that holds its VMs.
	nodeLease time.Duration
}

// apiServer is the running agent's API: the HTTPS listener with its
// rotating certificates, and the unix socket.
type apiServer struct {
	srv     *api.Server
	metrics *metrics.Metrics
	certs   *pki.Manager
	tcp     net.Listener
	sock    net.Listener
	log     *slog.Logger
	// url is the HTTPS API's address, "" without --listen.
	url string
}

// socketPath is the agent's unix socket for a state directory.
func socketPath(stateDir string) string { return filepath.Join(stateDir, api.SocketName) }

// openAPI opens the listeners before the loop starts, so a port in use or a
// second agent on the same state fails the start instead of running blind.
func (o *options) openAPI(e *env, so serveOptions) (*apiServer, error) {
	log := o.logger()
	s := &apiServer{log: log}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	var secret []byte
	if so.webhookSecret != "" {
		b, err := os.ReadFile(so.webhookSecret)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
			return nil, fmt.Errorf("--webhook-secret-file %s is empty", so.webhookSecret)
		}
	}
	svc := e.rt.Service()
	s.metrics = metrics.New()
	tokens, err := token.Open(o.stateDir)
	if err != nil {
		return nil, err
	}
	opts := api.Options{Node: o.node, Agent: svc, Uploads: svc, Uploaded: s.metrics.UploadReceived, Log: log, Metrics: s.metrics.Handler(log),
		Token: func(secret string) (string, time.Time, error) {
			info, err := tokens.Verify(secret)
			return info.Name, info.Expires, err
		}}
	if secret != nil {
		opts.Webhook = webhook.New(secret, func(ev webhook.Event) {
			e.agent.Event("Normal", "WebhookReceived", "", fmt.Sprintf("%s %s %s", ev.Provider, ev.Ref, ev.After))
			e.agent.Reconcile()
		}, log)
	}
	if so.listen != "" {
		host, _, err := net.SplitHostPort(so.listen)
		if err != nil {
			return nil, fmt.Errorf("--listen %q: want HOST:PORT: %w", so.listen, err)
		}
		names, ips := serverNames(o.node, host)
		s.certs, err = pki.New(pki.Options{Dir: pkiDir(o.stateDir), Lifetimes: pki.DefaultLifetimes(),
			DNSNames: names, IPs: ips, Log: log})
		if err != nil {
			return nil, err
		}
		opts.Certificates = func() any { return s.certs.Status() }
		// Other nodes' agents present certificates of their own CAs,
		// published in their status reports, to pull moved disks; only
		// the agent's own CA makes an API credential.
		opts.ClientCAs = s.certs.Pool
		if st := e.rt.Storage; st != nil {
			opts.Disks = (&diskmove.Server{Exporter: diskExporter{storage: st, agent: e.agent}, Log: log,
				Peers: func() (diskmove.Peers, error) {
					reports, _ := e.agent.FleetReports()
					return diskmove.PeersFrom(slices.Collect(maps.Values(reports)), o.node, so.nodeLease, time.Now())
				}}).Handler(api.DisksPrefix)
		}
		if s.tcp, err = api.ListenTLS(so.listen, s.certs.TLSConfigWithPeers(func() []byte { return peerCAs(e.agent, o.node) })); err != nil {
			return nil, err
		}
	}
	v := readBuildVersion()
	opts.Page = web.Handler(svc, web.Options{Node: o.node, Version: v.Version})
	if s.tcp != nil {
		v.Listen = "https://" + listenURLHost(so.listen, s.tcp.Addr(), o.node)
		s.url = v.Listen
	}
	opts.Version = v
	s.srv = api.New(opts)
	if s.sock, err = api.ListenSocket(socketPath(o.stateDir)); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// serverNames are the serving certificate's names: the node, localhost and
// the address listened on.
func serverNames(node, host string) ([]string, []net.IP) {
	names := []string{"localhost"}
	if node != "" && node != "localhost" {
		names = append(names, node)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		ips = append(ips, ip)
	} else if host != "" && ip == nil && host != "localhost" && host != node {
		names = append(names, host)
	}
	return names, ips
}

// serve runs the listeners and the certificate rotation until ctx ends.
func (s *apiServer) serve(ctx context.Context) {
	if s.certs != nil {
		go func() {
			if err := s.certs.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("certificate rotation stopped", "err", err)
			}
		}()
		go s.run(ctx, "https", s.tcp, s.srv.Handler())
		s.log.Info("serving the API", "address", "https://"+s.tcp.Addr().String())
	}
	go s.run(ctx, "socket", s.sock, s.srv.LocalHandler())
}

func (s *apiServer) run(ctx context.Context, what string, l net.Listener, h http.Handler) {
	if err := api.Serve(ctx, l, h, s.log); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		s.log.Error("API server stopped", "listener", what, "err", err)
	}
}

func (s *apiServer) close() {
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.sock != nil {
		s.sock.Close()
	}
}

// observe is what the API does after each reconcile: the metrics follow
// the iteration and the status it left, and a certConfig changed in git
// governs the next rotation.
func (s *apiServer) observe(e *env) func(agent.Iteration) {
	last := pki.DefaultLifetimes()
	return func(it agent.Iteration) {
		s.record(it)
		n := e.agent.Node()
		if s.certs == nil || n == nil {
			return
		}
		l, err := certLifetimes(n.Set)
		if err != nil {
			s.log.Error("certConfig of the source refused; keeping the current lifetimes", "err", err)
		} else if l != last {
			if err := s.certs.SetLifetimes(l); err != nil {
				s.log.Error("certConfig of the source refused; keeping the current lifetimes", "err", err)
				return
			}
			s.log.Info("certificate lifetimes changed by the source's certConfig", "ca", l.CA.Duration, "server", l.Server.Duration)
			last = l
		}
		cs := s.certs.Status()
		s.metrics.SetCertificateExpiry("ca", cs.CA.NotAfter)
		s.metrics.SetCertificateExpiry("server", cs.Server.NotAfter)
	}
}

// record sets the metrics from one iteration.
func (s *apiServer) record(it agent.Iteration) {
	m, st := s.metrics, it.Status
	if it.Fetched {
		m.SourceFetched(it.FetchErr)
		if it.Refused != nil {
			m.SourceRefused(it.Refused.Reason)
		}
	}
	for stage, d := range it.Stages {
		m.ObserveReconcile(stage, d)
	}
	m.ObserveReconcile(metrics.StageTotal, it.Took)
	m.ReconcileEnded(it.Start.Add(it.Took), it.Err)
	if st.Source.Revision == "" {
		return // the first fetch failed: nothing rendered yet
	}
	m.SetRevision(st.Source.Revision)
	if r := st.Source.Refused; r != nil {
		m.SetRefused(r.Revision, r.Reason)
	} else {
		m.SetRefused("", "")
	}
	vms := make([]metrics.VM, 0, len(st.VirtualMachines)+len(st.VirtualMachineInstances))
	for _, v := range st.VirtualMachines {
		vms = append(vms, metrics.VM{Namespace: v.Namespace, Name: v.Name, Phase: string(v.Status.PrintableStatus)})
	}
	dvs := make([]metrics.DataVolume, 0, len(st.DataVolumes))
	for _, d := range st.DataVolumes {
		var pct float64
		if _, err := fmt.Sscanf(string(d.Status.Progress), "%f%%", &pct); err == nil {
			dvs = append(dvs, metrics.DataVolume{Namespace: d.Namespace, Name: d.Name, Progress: pct / 100})
		} else {
			dvs = append(dvs, metrics.DataVolume{Namespace: d.Namespace, Name: d.Name})
		}
	}
	m.SetVMs(vms)
	m.SetDataVolumes(dvs)
	m.SetDrift(st.Drifted, len(st.Holds))
	m.SetSuspended(st.Suspension.Global)
}

// listenURLHost is host:port as clients reach the listener: the node's name
// for a wildcard address, the port the kernel chose for port 0.
func listenURLHost(listen string, addr net.Addr, node string) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = node
	}
	return net.JoinHostPort(host, port)
}

// peerCAs are the CAs the other nodes publish in their status reports, as
// last read (none without a status branch).
func peerCAs(a *agent.Agent, self string) []byte {
	reports, _ := a.FleetReports()
	var b []byte
	for node, r := range reports {
		if node != self && r.CA != "" {
			b = append(b, r.CA...)
			b = append(b, '\n')
		}
	}
	return b
}

// diskExporter hands the storage's moved volumes to the peers their
// nodeAffinity selects, by the labels the peers' reports give.
type diskExporter struct {
	storage *storage.Manager
	agent   *agent.Agent
}

func (d diskExporter) Export(_ context.Context, pv, peer string) (string, error) {
	reports, _ := d.agent.FleetReports()
	return d.storage.Export(pv, peer, reports[peer].Capacity.Labels)
}
