package agent_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/token"
)

// fleetSource writes n VirtualMachines, 10 per file, into a directory.
func fleetSource(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	var docs []string
	for i := 0; i < n; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm%04d, namespace: fleet}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 1}
        memory: {guest: 64Mi}
        devices: {}
`, i))
		if len(docs) == 10 || i == n-1 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vms-%04d.yaml", i)), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
				b.Fatal(err)
			}
			docs = docs[:0]
		}
	}
	return dir
}

// BenchmarkAPI_reconcile1000 is one reconcile of a node with 1,000 running
// VMs (libvirt's test driver; the source unchanged, so observe, plan and
// record the status), alone and while 200 clients ask the HTTPS API for the
// status as fast as it answers: ns/op compares the two, and the clients'
// latency is reported as status-p50-ms and status-p99-ms.
func BenchmarkAPI_reconcile1000(b *testing.B) {
	for _, clients := range []int{0, 200} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchReconcileUnderLoad(b, clients)
		})
	}
}

func benchReconcileUnderLoad(b *testing.B, clients int) {
	dir := b.TempDir()
	uri := "test://" + filepath.Join(dir, "node.xml")
	if err := os.WriteFile(filepath.Join(dir, "node.xml"), []byte(`<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>67108864</memory></node>`), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := agent.Open(ctx, openConfig(dir, fleetSource(b, 1000), uri, agent.AllStages))
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	rt.Agent.IterateForTest(ctx, true)
	if st := rt.Agent.Status(); len(st.VirtualMachines) != 1000 {
		b.Fatalf("%d VMs in the status, want 1000 (errors %v)", len(st.VirtualMachines), st.Reconcile.Errors)
	}

	state := filepath.Join(dir, "state")
	tokens, err := token.Open(state)
	if err != nil {
		b.Fatal(err)
	}
	secret, _, err := tokens.Create("bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	certs, err := pki.New(pki.Options{Dir: filepath.Join(state, "pki"), Lifetimes: pki.DefaultLifetimes(), DNSNames: []string{"localhost"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := api.New(api.Options{Node: "n1", Agent: rt.Service(), Token: func(s string) (string, time.Time, error) {
		info, err := tokens.Verify(s)
		return info.Name, info.Expires, err
	}})
	l, err := api.ListenTLS("127.0.0.1:0", certs.TLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	go api.Serve(ctx, l, srv.Handler(), nil)
	url := "https://localhost:" + strings.Split(l.Addr().String(), ":")[1] + "/api/v1/status"

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool()}, MaxIdleConnsPerHost: clients}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	lat := make([][]time.Duration, clients)
	var failures sync.Map
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: tr, Timeout: time.Minute}
			etag := ""
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				if etag != "" {
					req.Header.Set("If-None-Match", etag)
				}
				t0 := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						etag = resp.Header.Get("ETag")
					case http.StatusNotModified:
					default:
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failures.Store(i, err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	if clients > 0 {
		time.Sleep(500 * time.Millisecond) // the clients connected and busy
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rt.Agent.IterateForTest(ctx, true)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	failures.Range(func(k, v any) bool {
		b.Errorf("client %v: %v", k, v)
		return true
	})
	if st := rt.Agent.Status(); len(st.Reconcile.Errors) > 0 {
		b.Fatalf("reconcile errors: %v", st.Reconcile.Errors)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if clients == 0 {
		return
	}
	if len(all) == 0 {
		b.Fatal("no status request completed")
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "status-p50-ms")
	b.ReportMetric(q(0.99), "status-p99-ms")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "status-req/s")
}
