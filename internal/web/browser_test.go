//go:build e2e

package web_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/web"
	"github.com/nodevirt/nodevirt/internal/web/webtest"
)

// The page as Chromium renders it: the VMs and their states are in the DOM,
// the page reloads by itself and shows a changed state, and the screenshot
// is readable.
func TestBrowser_pageRendersAndRefreshes(t *testing.T) {
	n := sample(time.Now())
	var loads atomic.Int64
	h := web.Handler(n, web.Options{Node: "node-a", Version: "v0.9.1", RefreshSeconds: 1})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The lead's authentication turns ?token= into this cookie; here
		// the page is served only with it, so the helper's cookie is tested.
		if c, err := r.Cookie("nodevirt-session"); err != nil || c.Value != "s3cret" {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		loads.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	b := webtest.Start(t)
	if err := b.Open(srv.URL+"/", &http.Cookie{Name: "nodevirt-session", Value: "s3cret", HttpOnly: true, Secure: true}); err != nil {
		t.Fatal(err)
	}
	names, err := b.Texts("#vm-table tr.vm td.name")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "broken,db,web,importing" {
		t.Errorf("VM names in the rendered table: %s, want broken,db,web,importing", got)
	}
	states, err := b.Texts("#vm-table tr.vm td.state")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(states, ","); got != "CrashLoopBackOff,Stopped,Running,Provisioning" {
		t.Errorf("VM states in the rendered table: %s", got)
	}
	for sel, want := range map[string]string{
		"#node-name":   "node-a",
		"#fetch-error": "Last fetch failed: git fetch: dial tcp 192.0.2.1:443: connection refused",
		"#datavolumes tr[data-dv='prod/importing-disk'] td.progress": "45.00%",
	} {
		got, err := b.Text(sel)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s reads %q, want %q", sel, got, want)
		}
	}
	if _, err := b.Text("#reboot-required"); err != nil {
		t.Errorf("reboot-required is not visible: %v", err)
	}

	shot, err := b.Screenshot("status-page")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %v)", shot, err, fi)
	}
	t.Logf("screenshot: %s", shot)

	// The agent starts db: the open page shows it without being told to
	// load again.
	before := loads.Load()
	n.set(func(st *status.Node) {
		for i := range st.VirtualMachines {
			if st.VirtualMachines[i].Name == "db" {
				st.VirtualMachines[i].Status.PrintableStatus = kubevirtv1.VirtualMachineStatusRunning
				st.VirtualMachines[i].Status.Ready = true
			}
		}
	})
	if err := b.WaitText("#vm-table tr[data-vm='default/db'] td.state", "Running", 10*time.Second); err != nil {
		t.Fatalf("the page did not refresh to the new state: %v", err)
	}
	if got := loads.Load(); got <= before {
		t.Errorf("the server saw %d loads after the change, want the page to reload by itself", got-before)
	}
	if ready, err := b.Text("#vm-table tr[data-vm='default/db'] td.ready"); err != nil || ready != "True" {
		t.Errorf("db ready after refresh = %q (%v), want True", ready, err)
	}
}
