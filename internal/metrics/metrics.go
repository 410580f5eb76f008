// Package metrics holds the agent's Prometheus metrics: how long reconciling
// takes, what the source and the VMs look like, and how far the host has
// drifted from the source. The agent feeds it plain values; it knows no other
// nodevirt package.
package metrics

import (
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The stages ObserveReconcile is usually given; their series exist from the
// start so that a dashboard sees zero rather than nothing.
const (
	StageHost    = "host"
	StageStorage = "storage"
	StageVM      = "vm"
	StageTotal   = "total" // a whole iteration
)

// reconcileBuckets span a no-op host stage (about a millisecond) to a first
// import of large disks (minutes).
var reconcileBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300,
}

// VM is one virtual machine as nodevirt_vm_info shows it.
type VM struct {
	Namespace, Name string
	Phase           string // KubeVirt's printableStatus: Running, Stopped, Paused, Starting, …
}

// DataVolume is one DataVolume's import progress.
type DataVolume struct {
	Namespace, Name string
	Progress        float64 // 0..1; values outside are clamped
}

// Metrics is the agent's metrics on a registry of its own. It is safe for
// concurrent use: the reconcile loop writes while /metrics is scraped.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	sourceFetch       *prometheus.CounterVec
	drift             prometheus.Gauge
	pruneHeld         prometheus.Gauge
	certExpiry        *prometheus.GaugeVec
	suspended         prometheus.Gauge
	lastReconcile     prometheus.Gauge
	reconcileErrors   prometheus.Counter
	uploadBytes       prometheus.Counter
	statusPublish     *prometheus.CounterVec

	sets *sets
}

// New returns the metrics, registered with the Go runtime and process
// collectors on a registry of their own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodevirt_reconcile_duration_seconds",
			Help:    "Time one reconcile stage took; stage total is a whole iteration.",
			Buckets: reconcileBuckets,
		}, []string{"stage"}),
		sourceFetch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodevirt_source_fetch_total",
			Help: "Fetches of the source repository, by result (success or failure).",
		}, []string{"result"}),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodevirt_drift_objects",
			Help: "Objects on the host that differ from the source.",
		}),
		pruneHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodevirt_prune_held",
			Help: "Removals the prune guard holds back.",
		}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodevirt_certificate_expiry_timestamp_seconds",
			Help: "When the agent's certificate expires (notAfter), in seconds since the Unix epoch.",
		}, []string{"cert"}),
		suspended: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodevirt_reconcile_suspended",
			Help: "1 while reconciling is suspended for the whole node, else 0.",
		}),
		lastReconcile: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodevirt_last_reconcile_timestamp_seconds",
			Help: "When the last reconcile iteration ended, in seconds since the Unix epoch.",
		}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodevirt_reconcile_errors_total",
			Help: "Reconcile iterations that ended with an error.",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodevirt_upload_bytes_total",
			Help: "Bytes of disk images received by uploads, failed ones included.",
		}),
		statusPublish: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodevirt_status_publish_total",
			Help: "Pushes of the node's report to the fleet's status branch, by result (success or failure).",
		}, []string{"result"}),
		sets: newSets(),
	}
	for _, s := range []string{StageHost, StageStorage, StageVM, StageTotal} {
		m.reconcileDuration.WithLabelValues(s)
	}
	m.sourceFetch.WithLabelValues("success")
	m.sourceFetch.WithLabelValues("failure")
	m.statusPublish.WithLabelValues("success")
	m.statusPublish.WithLabelValues("failure")
	m.reg.MustRegister(
		m.reconcileDuration, m.sourceFetch, m.drift, m.pruneHeld, m.certExpiry,
		m.suspended, m.lastReconcile, m.reconcileErrors, m.uploadBytes, m.statusPublish, m.sets,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the exposition format. A metric that cannot
// be gathered is logged to log (nil: discarded) and counted in
// promhttp_metric_handler_errors_total; the rest is still served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// errorLog is promhttp's Logger on top of slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	for _, x := range v {
		if err, ok := x.(error); ok {
			l.log.Warn("serving metrics", "err", err)
			return
		}
	}
	l.log.Warn("serving metrics", "msg", v)
}

// ObserveReconcile records how long one stage (StageHost, …, StageTotal) took.
func (m *Metrics) ObserveReconcile(stage string, d time.Duration) {
	m.reconcileDuration.WithLabelValues(stage).Observe(d.Seconds())
}

// SourceFetched counts one fetch of the source; err is its result.
func (m *Metrics) SourceFetched(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.sourceFetch.WithLabelValues(result).Inc()
}

// StatusPublished counts one publish of the node's report to the status
// branch: a failure when err is not nil.
func (m *Metrics) StatusPublished(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.statusPublish.WithLabelValues(result).Inc()
}

// SetRevision makes rev the only revision nodevirt_source_revision_info shows.
func (m *Metrics) SetRevision(rev string) { m.sets.setRevision(rev) }

// SetVMs replaces the VMs nodevirt_vm_info shows with vms: VMs not in vms
// disappear. vms is copied.
func (m *Metrics) SetVMs(vms []VM) { m.sets.setVMs(vms) }

// SetDataVolumes replaces the DataVolumes nodevirt_datavolume_progress_ratio
// shows with dvs, as SetVMs does. dvs is copied.
func (m *Metrics) SetDataVolumes(dvs []DataVolume) { m.sets.setDataVolumes(dvs) }

// SetDrift records how many objects differ from the source and how many
// removals the prune guard holds.
func (m *Metrics) SetDrift(objects, held int) {
	m.drift.Set(float64(objects))
	m.pruneHeld.Set(float64(held))
}

// SetCertificateExpiry records when cert ("ca", "server") expires.
func (m *Metrics) SetCertificateExpiry(cert string, notAfter time.Time) {
	m.certExpiry.WithLabelValues(cert).Set(unixSeconds(notAfter))
}

// SetSuspended records whether reconciling is suspended for the whole node.
func (m *Metrics) SetSuspended(suspended bool) {
	v := 0.0
	if suspended {
		v = 1
	}
	m.suspended.Set(v)
}

// ReconcileEnded records that an iteration ended at at, with err.
func (m *Metrics) ReconcileEnded(at time.Time, err error) {
	m.lastReconcile.Set(unixSeconds(at))
	if err != nil {
		m.reconcileErrors.Inc()
	}
}

// UploadReceived counts n bytes an upload received.
func (m *Metrics) UploadReceived(n int64) { m.uploadBytes.Add(float64(n)) }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// sets exposes the metrics whose whole set of series is replaced at once
// (the revision, the VMs, the DataVolumes). They are held as plain values and
// turned into metrics at scrape time, so a scrape sees either the old set or
// the new one, never a half-replaced or empty one, and an unchanged set costs
// one comparison.
type sets struct {
	revisionDesc, vmDesc, dvDesc *prometheus.Desc

	mu       sync.Mutex
	revision string // "" before the first SetRevision: no series
	vms      []VM   // never modified once stored: Collect reads it unlocked
	dvs      []DataVolume
}

func newSets() *sets {
	return &sets{
		revisionDesc: prometheus.NewDesc("nodevirt_source_revision_info",
			"The source revision the agent works from; 1 for the current one only.",
			[]string{"revision"}, nil),
		vmDesc: prometheus.NewDesc("nodevirt_vm_info",
			"1 for every VM of the node, with its KubeVirt status as phase.",
			[]string{"namespace", "name", "phase"}, nil),
		dvDesc: prometheus.NewDesc("nodevirt_datavolume_progress_ratio",
			"How far a DataVolume's import has got, 0 to 1.",
			[]string{"namespace", "name"}, nil),
	}
}

func (s *sets) setRevision(rev string) {
	s.mu.Lock()
	s.revision = rev
	s.mu.Unlock()
}

func (s *sets) setVMs(vms []VM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Equal(s.vms, vms) {
		s.vms = slices.Clone(vms)
	}
}

func (s *sets) setDataVolumes(dvs []DataVolume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Equal(s.dvs, dvs) {
		s.dvs = slices.Clone(dvs)
	}
}

func (s *sets) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.revisionDesc
	ch <- s.vmDesc
	ch <- s.dvDesc
}

// Collect reports bad label values (not UTF-8) and duplicate series as
// gathering errors: the handler logs them and serves the rest.
func (s *sets) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	rev, vms, dvs := s.revision, s.vms, s.dvs
	s.mu.Unlock()
	if rev != "" {
		ch <- constGauge(s.revisionDesc, 1, rev)
	}
	for _, vm := range vms {
		ch <- constGauge(s.vmDesc, 1, vm.Namespace, vm.Name, vm.Phase)
	}
	for _, dv := range dvs {
		ch <- constGauge(s.dvDesc, min(max(dv.Progress, 0), 1), dv.Namespace, dv.Name)
	}
}

func constGauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
