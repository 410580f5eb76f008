package metrics_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodevirt/nodevirt/internal/metrics"
)

// serve puts m's handler on a loopback server; log collects what the handler logs.
func serve(t testing.TB, m *metrics.Metrics) (url string, log *syncBuffer) {
	t.Helper()
	log = &syncBuffer{}
	srv := httptest.NewServer(m.Handler(slog.New(slog.NewTextHandler(log, nil))))
	t.Cleanup(srv.Close)
	return srv.URL, log
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return body
}

// scrape fetches url and parses the text exposition.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	body := get(t, url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// series returns the family's series as "k=v,k=v" (sorted label names) → value.
func series(t testing.TB, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		var keys []string
		for k, v := range labelsOf(m) {
			keys = append(keys, k+"="+v)
		}
		slices.Sort(keys)
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: series of unexpected type", name)
		}
		out[strings.Join(keys, ",")] = v
	}
	return out
}

func wantSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]float64) {
	t.Helper()
	got := series(t, fams, name)
	if len(got) != len(want) {
		t.Errorf("%s: got series %v, want %v", name, got, want)
		return
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || g != v {
			t.Errorf("%s: got series %v, want %v", name, got, want)
			return
		}
	}
}

// everything feeds every metric once so that each has a series.
func everything(m *metrics.Metrics) {
	m.ObserveReconcile(metrics.StageTotal, 2*time.Second)
	m.SourceFetched(nil)
	m.SetRevision("abc123")
	m.SetVMs([]metrics.VM{{Namespace: "default", Name: "vm1", Phase: "Running"}})
	m.SetDrift(3, 1)
	m.SetDataVolumes([]metrics.DataVolume{{Namespace: "default", Name: "dv1", Progress: 0.5}})
	m.SetCertificateExpiry("ca", time.Unix(2000000000, 0))
	m.SetCertificateExpiry("server", time.Unix(1900000000, 0))
	m.SetSuspended(true)
	m.ReconcileEnded(time.Unix(1700000000, 0), nil)
}

func TestMetrics_everyMetricHasHelpAndType(t *testing.T) {
	m := metrics.New()
	everything(m)
	url, _ := serve(t, m)
	fams := scrape(t, url)

	want := map[string]dto.MetricType{
		"nodevirt_reconcile_duration_seconds":           dto.MetricType_HISTOGRAM,
		"nodevirt_source_fetch_total":                   dto.MetricType_COUNTER,
		"nodevirt_source_revision_info":                 dto.MetricType_GAUGE,
		"nodevirt_vm_info":                              dto.MetricType_GAUGE,
		"nodevirt_drift_objects":                        dto.MetricType_GAUGE,
		"nodevirt_prune_held":                           dto.MetricType_GAUGE,
		"nodevirt_datavolume_progress_ratio":            dto.MetricType_GAUGE,
		"nodevirt_certificate_expiry_timestamp_seconds": dto.MetricType_GAUGE,
		"nodevirt_reconcile_suspended":                  dto.MetricType_GAUGE,
		"nodevirt_last_reconcile_timestamp_seconds":     dto.MetricType_GAUGE,
		"nodevirt_reconcile_errors_total":               dto.MetricType_COUNTER,
		"nodevirt_upload_bytes_total":                   dto.MetricType_COUNTER,
		"nodevirt_status_publish_total":                 dto.MetricType_COUNTER,
		// the Go runtime and process collectors
		"go_goroutines":             dto.MetricType_GAUGE,
		"process_cpu_seconds_total": dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s missing from the exposition", name)
			continue
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if f.GetType() != typ {
			t.Errorf("%s has TYPE %v, want %v", name, f.GetType(), typ)
		}
	}
	var extra []string
	for name := range fams {
		if strings.HasPrefix(name, "nodevirt_") {
			if _, ok := want[name]; !ok {
				extra = append(extra, name)
			}
		}
	}
	if len(extra) > 0 {
		t.Errorf("metrics nobody asked for: %v", extra)
	}
}

func TestMetrics_freshAgentShowsZeroesNotNothing(t *testing.T) {
	url, _ := serve(t, metrics.New())
	fams := scrape(t, url)
	wantSeries(t, fams, "nodevirt_source_fetch_total", map[string]float64{"result=success": 0, "result=failure": 0})
	wantSeries(t, fams, "nodevirt_reconcile_duration_seconds", map[string]float64{
		"stage=host": 0, "stage=storage": 0, "stage=vm": 0, "stage=total": 0,
	})
	wantSeries(t, fams, "nodevirt_reconcile_errors_total", map[string]float64{"": 0})
	wantSeries(t, fams, "nodevirt_upload_bytes_total", map[string]float64{"": 0})
	wantSeries(t, fams, "nodevirt_status_publish_total", map[string]float64{"result=success": 0, "result=failure": 0})
	// Nothing is known yet about the source or the VMs: no series, not a made-up one.
	for _, name := range []string{"nodevirt_source_revision_info", "nodevirt_vm_info", "nodevirt_datavolume_progress_ratio", "nodevirt_certificate_expiry_timestamp_seconds"} {
		if n := len(fams[name].GetMetric()); n != 0 {
			t.Errorf("%s has %d series before anything was set", name, n)
		}
	}
}

func TestMetrics_valuesAndLabels(t *testing.T) {
	m := metrics.New()
	url, _ := serve(t, m)

	m.SourceFetched(nil)
	m.SourceFetched(nil)
	m.SourceFetched(errors.New("fetch: connection refused"))
	m.ObserveReconcile(metrics.StageVM, 3*time.Second)
	m.ObserveReconcile(metrics.StageHost, 2*time.Millisecond)
	m.SetDrift(4, 2)
	notAfter := time.Date(2031, 5, 6, 7, 8, 9, 500e6, time.UTC)
	m.SetCertificateExpiry("server", notAfter)
	m.SetSuspended(true)
	m.SetSuspended(false)
	m.ReconcileEnded(time.Unix(1700000000, 0), errors.New("apply: boom"))
	m.ReconcileEnded(time.Unix(1700000060, 0), nil)
	m.UploadReceived(1 << 20)
	m.UploadReceived(512)
	m.StatusPublished(nil)
	m.StatusPublished(errors.New("push: rejected"))
	m.StatusPublished(errors.New("push: rejected"))

	fams := scrape(t, url)
	wantSeries(t, fams, "nodevirt_status_publish_total", map[string]float64{"result=success": 1, "result=failure": 2})
	wantSeries(t, fams, "nodevirt_upload_bytes_total", map[string]float64{"": 1<<20 + 512})
	wantSeries(t, fams, "nodevirt_source_fetch_total", map[string]float64{"result=success": 2, "result=failure": 1})
	wantSeries(t, fams, "nodevirt_drift_objects", map[string]float64{"": 4})
	wantSeries(t, fams, "nodevirt_prune_held", map[string]float64{"": 2})
	wantSeries(t, fams, "nodevirt_certificate_expiry_timestamp_seconds", map[string]float64{"cert=server": 1935817689.5})
	wantSeries(t, fams, "nodevirt_reconcile_suspended", map[string]float64{"": 0})
	wantSeries(t, fams, "nodevirt_last_reconcile_timestamp_seconds", map[string]float64{"": 1700000060})
	wantSeries(t, fams, "nodevirt_reconcile_errors_total", map[string]float64{"": 1})

	// The histogram: 3 s lands in the 5 s bucket and above, not in 2.5 s; the
	// host stage's 2 ms in the 2.5 ms bucket; buckets reach 5 minutes.
	for _, s := range fams["nodevirt_reconcile_duration_seconds"].GetMetric() {
		h := s.GetHistogram()
		buckets := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		if _, ok := buckets[0.001]; !ok {
			t.Errorf("no 1 ms bucket: %v", buckets)
		}
		if _, ok := buckets[300]; !ok {
			t.Errorf("no 5 min bucket: %v", buckets)
		}
		switch stage := labelsOf(s)["stage"]; stage {
		case "vm":
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 3 || buckets[2.5] != 0 || buckets[5] != 1 {
				t.Errorf("stage vm: count %d sum %v buckets %v", h.GetSampleCount(), h.GetSampleSum(), buckets)
			}
		case "host":
			if h.GetSampleCount() != 1 || buckets[0.001] != 0 || buckets[0.0025] != 1 {
				t.Errorf("stage host: count %d buckets %v", h.GetSampleCount(), buckets)
			}
		default:
			if h.GetSampleCount() != 0 {
				t.Errorf("stage %s has %d observations, want 0", stage, h.GetSampleCount())
			}
		}
	}
}

func TestMetrics_setsReplaceWhatWasThere(t *testing.T) {
	m := metrics.New()
	url, _ := serve(t, m)

	m.SetRevision("r1")
	m.SetVMs([]metrics.VM{
		{Namespace: "a", Name: "web", Phase: "Running"},
		{Namespace: "a", Name: "db", Phase: "Starting"},
	})
	m.SetDataVolumes([]metrics.DataVolume{
		{Namespace: "a", Name: "web-root", Progress: 0.25},
		{Namespace: "a", Name: "db-root", Progress: 1},
	})
	fams := scrape(t, url)
	wantSeries(t, fams, "nodevirt_source_revision_info", map[string]float64{"revision=r1": 1})
	wantSeries(t, fams, "nodevirt_vm_info", map[string]float64{
		"name=web,namespace=a,phase=Running": 1,
		"name=db,namespace=a,phase=Starting": 1,
	})
	wantSeries(t, fams, "nodevirt_datavolume_progress_ratio", map[string]float64{
		"name=web-root,namespace=a": 0.25,
		"name=db-root,namespace=a":  1,
	})

	// web left, db changed phase, cache came; web-root finished and left.
	vms := []metrics.VM{
		{Namespace: "a", Name: "db", Phase: "Running"},
		{Namespace: "b", Name: "cache", Phase: "Paused"},
	}
	m.SetRevision("r2")
	m.SetVMs(vms)
	m.SetDataVolumes([]metrics.DataVolume{
		{Namespace: "b", Name: "cache-root", Progress: 1.7}, // a caller's rounding: clamped
		{Namespace: "b", Name: "cache-data", Progress: -0.1},
	})
	vms[0].Phase = "Stopped" // the caller reuses its slice: what was set stays
	fams = scrape(t, url)
	wantSeries(t, fams, "nodevirt_source_revision_info", map[string]float64{"revision=r2": 1})
	wantSeries(t, fams, "nodevirt_vm_info", map[string]float64{
		"name=db,namespace=a,phase=Running":   1,
		"name=cache,namespace=b,phase=Paused": 1,
	})
	wantSeries(t, fams, "nodevirt_datavolume_progress_ratio", map[string]float64{
		"name=cache-root,namespace=b": 1,
		"name=cache-data,namespace=b": 0,
	})

	m.SetVMs(nil)
	m.SetDataVolumes(nil)
	fams = scrape(t, url)
	wantSeries(t, fams, "nodevirt_vm_info", map[string]float64{})
	wantSeries(t, fams, "nodevirt_datavolume_progress_ratio", map[string]float64{})
}

// A bad value from the caller costs its own series only: the scrape still
// succeeds, and the log says what was wrong.
func TestMetrics_badSeriesAreLoggedAndTheRestServed(t *testing.T) {
	m := metrics.New()
	url, log := serve(t, m)
	m.SetDrift(7, 0)
	m.SetVMs([]metrics.VM{
		{Namespace: "a", Name: "ok", Phase: "Running"},
		{Namespace: "a", Name: "bad\xff", Phase: "Running"},
		{Namespace: "a", Name: "twice", Phase: "Running"},
		{Namespace: "a", Name: "twice", Phase: "Running"},
	})
	fams := scrape(t, url)
	wantSeries(t, fams, "nodevirt_drift_objects", map[string]float64{"": 7})
	wantSeries(t, fams, "nodevirt_vm_info", map[string]float64{
		"name=ok,namespace=a,phase=Running":    1,
		"name=twice,namespace=a,phase=Running": 1,
	})
	logged := log.String()
	for _, want := range []string{"serving metrics", "UTF-8", "collected before with the same name and label values"} {
		if !strings.Contains(logged, want) {
			t.Errorf("log does not say %q:\n%s", want, logged)
		}
	}
	// The handler counts an error after the scrape that saw it.
	errs := series(t, scrape(t, url), "promhttp_metric_handler_errors_total")
	if errs["cause=gathering"] != 1 {
		t.Errorf("promhttp_metric_handler_errors_total = %v, want one gathering error", errs)
	}
}

func TestMetrics_lintClean(t *testing.T) {
	m := metrics.New()
	everything(m)
	url, _ := serve(t, m)
	problems, err := promlint.New(bytes.NewReader(get(t, url))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// The loop writes while /metrics is scraped: every scrape parses and sees one
// whole set of VMs, never an empty or half-replaced one. Run with -race.
func TestMetrics_concurrentWritersAndScrapes(t *testing.T) {
	m := metrics.New()
	url, log := serve(t, m)

	const n = 50
	set := func(gen string) []metrics.VM {
		vms := make([]metrics.VM, n)
		for i := range vms {
			vms[i] = metrics.VM{Namespace: "ns", Name: fmt.Sprintf("%s-%d", gen, i), Phase: "Running"}
		}
		return vms
	}
	gens := [][]metrics.VM{set("even"), set("odd")}
	m.SetVMs(gens[0])

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m.SetVMs(gens[(i+w)%2])
				m.SetRevision(fmt.Sprintf("rev-%d", i%3))
				m.SetDataVolumes([]metrics.DataVolume{{Namespace: "ns", Name: "dv", Progress: float64(i%10) / 10}})
				m.ObserveReconcile(metrics.StageTotal, time.Duration(i)*time.Millisecond)
				m.SourceFetched(nil)
				m.SetDrift(i, i%2)
				m.SetCertificateExpiry("server", time.Unix(int64(i), 0))
				m.SetSuspended(i%2 == 0)
				m.ReconcileEnded(time.Unix(int64(i), 0), nil)
			}
		})
	}

	var scrapers sync.WaitGroup
	for range 2 {
		scrapers.Go(func() {
			for range 30 {
				fams := scrape(t, url)
				var gen string
				vms := fams["nodevirt_vm_info"].GetMetric()
				for _, s := range vms {
					g, _, _ := strings.Cut(labelsOf(s)["name"], "-")
					if gen == "" {
						gen = g
					}
					if g != gen {
						t.Errorf("a scrape saw VMs of two sets (%s and %s)", gen, g)
						return
					}
				}
				if len(vms) != n {
					t.Errorf("a scrape saw %d VMs, want %d", len(vms), n)
					return
				}
				if revs := fams["nodevirt_source_revision_info"].GetMetric(); len(revs) != 1 {
					t.Errorf("a scrape saw %d revisions, want 1", len(revs))
					return
				}
			}
		})
	}
	scrapers.Wait()
	close(stop)
	writers.Wait()
	if strings.Contains(log.String(), "serving metrics") {
		t.Errorf("the handler logged errors:\n%s", log.String())
	}
	if got := series(t, scrape(t, url), "nodevirt_source_fetch_total")["result=success"]; got == 0 || math.IsNaN(got) {
		t.Errorf("no fetch counted: %v", got)
	}
}

// BenchmarkSetVMs1000 is the per-iteration cost of telling the metrics about
// 1,000 VMs that did not change (the agent's steady state).
func BenchmarkSetVMs1000(b *testing.B) {
	m := metrics.New()
	vms := make([]metrics.VM, 1000)
	for i := range vms {
		vms[i] = metrics.VM{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("vm-%04d", i), Phase: "Running"}
	}
	m.SetVMs(vms)
	b.ReportAllocs()
	for b.Loop() {
		m.SetVMs(vms)
	}
}

// BenchmarkScrape1000 is what one scrape of /metrics with 1,000 VMs and
// 1,000 DataVolumes costs the agent (over loopback, body read).
func BenchmarkScrape1000(b *testing.B) {
	m := metrics.New()
	vms := make([]metrics.VM, 1000)
	dvs := make([]metrics.DataVolume, 1000)
	for i := range vms {
		vms[i] = metrics.VM{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("vm-%04d", i), Phase: "Running"}
		dvs[i] = metrics.DataVolume{Namespace: vms[i].Namespace, Name: vms[i].Name + "-root", Progress: 1}
	}
	m.SetVMs(vms)
	m.SetDataVolumes(dvs)
	url, _ := serve(b, m)
	b.ReportAllocs()
	for b.Loop() {
		get(b, url)
	}
}
