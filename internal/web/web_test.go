package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/web"
)

// node is an in-memory agent: the status and events it is given, and a
// fixed description (or an error).
type node struct {
	mu      sync.Mutex
	st      status.Node
	events  []status.Event
	desc    nodedesc.Description
	descErr error
	// hang makes Describe wait for its context, as a hung libvirt would.
	hang bool
}

func (n *node) Status() status.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

func (n *node) Events() []status.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.events
}

func (n *node) Describe(ctx context.Context) (nodedesc.Description, error) {
	if n.hang {
		<-ctx.Done()
		return nodedesc.Description{}, ctx.Err()
	}
	return n.desc, n.descErr
}

func (n *node) set(f func(*status.Node)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.st)
}

func vm(ns, name string, state kubevirtv1.VirtualMachinePrintableStatus, ready bool) kubevirtv1.VirtualMachine {
	return kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status:     kubevirtv1.VirtualMachineStatus{PrintableStatus: state, Ready: ready},
	}
}

func sample(now time.Time) *node {
	fetched, reconciled := now.Add(-90*time.Second), now.Add(-30*time.Second)
	stopped := vm("default", "db", kubevirtv1.VirtualMachineStatusStopped, false)
	stopped.Status.StateChangeRequests = []kubevirtv1.VirtualMachineStateChangeRequest{{Action: kubevirtv1.StartRequest}}
	sc := "local"
	return &node{
		st: status.Node{
			Source: status.Source{URL: "https://git.example/infra.git", Revision: "main@sha1:0123abcd", LastFetch: &fetched,
				FetchError: "git fetch: dial tcp 192.0.2.1:443: connection refused"},
			Reconcile: status.Reconcile{Last: &reconciled, Duration: "1.2s", Actions: 3, Count: 7,
				Errors: []string{"VirtualMachine default/broken: define domain: invalid disk bus"}},
			Suspension: status.Suspension{Objects: []string{"VirtualMachine default/db"}},
			Host: status.Host{RebootRequired: true, Reason: "kernel arguments intel_iommu=on staged", Pending: 1,
				Steps: []status.Step{{Stage: "host", Action: "reboot-required", Object: "MachineConfig 50-iommu", Reason: "kernel arguments intel_iommu=on staged"}}},
			Differences: []status.Step{{Stage: "vm", Action: "update", Object: "VirtualMachine default/web", Target: "default_web",
				Reason: "memory changed out of band", Drift: true}},
			Drifted: 1,
			Holds:   []status.Step{{Stage: "vm", Action: "hold", Object: "VirtualMachine default/old", Reason: "removal needs confirmation"}},
			VirtualMachines: []kubevirtv1.VirtualMachine{
				vm("default", "web", kubevirtv1.VirtualMachineStatusRunning, true),
				stopped,
				vm("default", "broken", kubevirtv1.VirtualMachineStatusCrashLoopBackOff, false),
				vm("prod", "importing", kubevirtv1.VirtualMachineStatusProvisioning, false),
			},
			DataVolumes: []cdiv1.DataVolume{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "importing-disk"},
				Status:     cdiv1.DataVolumeStatus{Phase: cdiv1.ImportInProgress, Progress: "45.00%"},
			}, {
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-disk"},
				Status:     cdiv1.DataVolumeStatus{Phase: cdiv1.Succeeded, Progress: "100.0%"},
			}},
			PersistentVolumeClaims: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-disk"},
				Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv-web", StorageClassName: &sc},
				Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
					Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
			}},
			PersistentVolumes: []corev1.PersistentVolume{{
				ObjectMeta: metav1.ObjectMeta{Name: "pv-web"},
				Spec: corev1.PersistentVolumeSpec{StorageClassName: sc,
					Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
					ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: "web-disk"},
					PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/var/lib/nodevirt/disks/web"}}},
				Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
			}},
		},
		events: []status.Event{
			{Time: now.Add(-5 * time.Minute), Type: status.Normal, Reason: "Started", Object: "VirtualMachine default/web", Message: "domain started"},
			{Time: now.Add(-1 * time.Minute), Type: status.Warning, Reason: "FetchFailed", Message: "connection refused"},
			{Time: now.Add(-3 * time.Minute), Type: status.Normal, Reason: "Reconciled", Message: "3 actions"},
		},
		desc: nodedesc.Description{
			Name:        "node-a",
			CPU:         nodedesc.CPUDescription{Vendor: "GenuineIntel", Model: "Intel(R) Xeon(R) Gold 6338"},
			Capacity:    map[string]string{"cpu": "64", "memory": "256Gi", "devices.kubevirt.io/kvm": "110"},
			Allocatable: map[string]string{"cpu": "62", "memory": "250Gi", "devices.kubevirt.io/kvm": "110"},
			Devices: []nodedesc.NodeDevice{{Address: "0000:3b:00.0", ID: "10de:1eb8", Driver: "vfio-pci",
				Resource: "nvidia.com/TU104GL_Tesla_T4", Allocatable: false, HeldBy: []string{"default_gpu-vm"}}},
		},
	}
}

// page fetches the page over loopback and parses it.
func page(t *testing.T, h http.Handler) *html.Node {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatalf("parse the page: %v", err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// find returns every element under n for which match is true, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func byID(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	found := find(doc, func(n *html.Node) bool { v, ok := attr(n, "id"); return ok && v == id })
	if len(found) != 1 {
		t.Fatalf("page has %d elements with id %q, want 1", len(found), id)
	}
	return found[0]
}

func hasID(doc *html.Node, id string) bool {
	return len(find(doc, func(n *html.Node) bool { v, ok := attr(n, "id"); return ok && v == id })) > 0
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	for _, c := range strings.Fields(v) {
		if c == class {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// cell is the text of the cell of class class in row.
func cell(t *testing.T, row *html.Node, class string) string {
	t.Helper()
	cells := find(row, func(n *html.Node) bool { return n.Data == "td" && hasClass(n, class) })
	if len(cells) != 1 {
		t.Fatalf("row has %d cells of class %q, want 1", len(cells), class)
	}
	return text(cells[0])
}

// rows maps the rows of table id by their data attribute key.
func rows(t *testing.T, doc *html.Node, id, key string) map[string]*html.Node {
	t.Helper()
	out := map[string]*html.Node{}
	for _, tr := range find(byID(t, doc, id), func(n *html.Node) bool { return n.Data == "tr" }) {
		if k, ok := attr(tr, key); ok {
			out[k] = tr
		}
	}
	return out
}

func TestPage_showsTheNode(t *testing.T) {
	n := sample(time.Now())
	doc := page(t, web.Handler(n, web.Options{Node: "node-a", Version: "v0.9.1"}))

	for id, want := range map[string]string{
		"node-name":          "node-a",
		"version":            "v0.9.1",
		"source-url":         "https://git.example/infra.git",
		"source-revision":    "main@sha1:0123abcd",
		"fetch-error":        "Last fetch failed: git fetch: dial tcp 192.0.2.1:443: connection refused",
		"reconcile-duration": "1.2s",
		"reconcile-actions":  "3",
		"reconcile-errors":   "invalid disk bus",
		"reboot-required":    "Reboot required: kernel arguments intel_iommu=on staged",
		"host-pending":       "1",
		"suspended-objects":  "VirtualMachine default/db",
		"cpu":                "Intel(R) Xeon(R) Gold 6338 (GenuineIntel)",
	} {
		if got := text(byID(t, doc, id)); !strings.Contains(got, want) {
			t.Errorf("#%s = %q, want it to contain %q", id, got, want)
		}
	}
	if !strings.Contains(text(byID(t, doc, "last-fetch")), "1m ago") {
		t.Errorf("#last-fetch = %q, want the age 1m ago", text(byID(t, doc, "last-fetch")))
	}
	if hasID(doc, "suspended") {
		t.Error("the node-wide suspension banner shows although only one object is suspended")
	}

	vms := rows(t, doc, "vm-table", "data-vm")
	for key, want := range map[string][2]string{
		"default/web":    {"Running", "True"},
		"default/db":     {"Stopped", "False"},
		"default/broken": {"CrashLoopBackOff", "False"},
		"prod/importing": {"Provisioning", "False"},
	} {
		row, ok := vms[key]
		if !ok {
			t.Errorf("VM %s is not in #vm-table", key)
			continue
		}
		if got := cell(t, row, "state"); got != want[0] {
			t.Errorf("VM %s state = %q, want %q", key, got, want[0])
		}
		if got := cell(t, row, "ready"); got != want[1] {
			t.Errorf("VM %s ready = %q, want %q", key, got, want[1])
		}
	}
	if len(vms) != 4 {
		t.Errorf("#vm-table has %d VMs, want 4", len(vms))
	}
	if got := cell(t, vms["default/web"], "drift"); got != "update memory changed out of band" {
		t.Errorf("web drift = %q", got)
	}
	if got := cell(t, vms["default/db"], "drift"); got != "" {
		t.Errorf("db drift = %q, want none", got)
	}
	if got := cell(t, vms["default/db"], "suspended"); got != "suspended" {
		t.Errorf("db suspended = %q", got)
	}
	if got := cell(t, vms["default/web"], "suspended"); got != "" {
		t.Errorf("web suspended = %q, want not", got)
	}
	if got := cell(t, vms["default/db"], "requests"); got != "Start" {
		t.Errorf("db run requests = %q", got)
	}

	dvs := rows(t, doc, "datavolumes", "data-dv")
	imp := dvs["prod/importing-disk"]
	if imp == nil {
		t.Fatal("DataVolume prod/importing-disk is not in #datavolumes")
	}
	if got := cell(t, imp, "phase"); got != "ImportInProgress" {
		t.Errorf("importing-disk phase = %q", got)
	}
	bars := find(imp, func(n *html.Node) bool { return n.Data == "progress" })
	if len(bars) != 1 {
		t.Fatalf("importing-disk has %d progress bars, want 1", len(bars))
	}
	if v, _ := attr(bars[0], "value"); v != "45.00" {
		t.Errorf("progress value = %q, want 45.00", v)
	}
	if m, _ := attr(bars[0], "max"); m != "100" {
		t.Errorf("progress max = %q, want 100", m)
	}
	if got := cell(t, rows(t, doc, "pvcs", "data-pvc")["default/web-disk"], "phase"); got != "Bound" {
		t.Errorf("PVC phase = %q", got)
	}
	if got := cell(t, rows(t, doc, "pvs", "data-pv")["pv-web"], "phase"); got != "Bound" {
		t.Errorf("PV phase = %q", got)
	}

	res := rows(t, doc, "resources", "data-resource")
	if got := cell(t, res["memory"], "capacity"); got != "256Gi" {
		t.Errorf("memory capacity = %q", got)
	}
	if got := cell(t, res["cpu"], "allocatable"); got != "62" {
		t.Errorf("cpu allocatable = %q", got)
	}
	dev := rows(t, doc, "devices", "data-device")["0000:3b:00.0"]
	if dev == nil {
		t.Fatal("PCI device 0000:3b:00.0 is not in #devices")
	}
	if got := cell(t, dev, "held-by"); got != "default_gpu-vm" {
		t.Errorf("device held by = %q", got)
	}
	if !strings.Contains(text(byID(t, doc, "hold-table")), "VirtualMachine default/old") {
		t.Error("#hold-table does not show the held removal")
	}

	// Events: newest first, the warning marked as one.
	evs := find(byID(t, doc, "event-table"), func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "event") })
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, cell(t, e, "reason"))
	}
	if got := strings.Join(reasons, ","); got != "FetchFailed,Reconciled,Started" {
		t.Errorf("events in order %s, want newest first FetchFailed,Reconciled,Started", got)
	}
	if !hasClass(evs[0], "warning") || hasClass(evs[1], "warning") {
		t.Error("only the Warning event should have the class warning")
	}
	if tm := find(evs[0], func(n *html.Node) bool { return n.Data == "time" }); len(tm) != 1 {
		t.Error("event row has no <time>")
	} else if dt, _ := attr(tm[0], "datetime"); dt != n.events[1].Time.UTC().Format(time.RFC3339) {
		t.Errorf("event datetime = %q, want RFC 3339 %q", dt, n.events[1].Time.UTC().Format(time.RFC3339))
	}

	// The page reloads itself without script.
	metas := find(doc, func(n *html.Node) bool { v, _ := attr(n, "http-equiv"); return n.Data == "meta" && v == "refresh" })
	if len(metas) != 1 {
		t.Fatalf("%d meta refresh elements, want 1", len(metas))
	}
	if c, _ := attr(metas[0], "content"); c != "5" {
		t.Errorf("refresh = %q, want the default 5", c)
	}
	if s := find(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "link" || n.Data == "img" }); len(s) != 0 {
		t.Errorf("page has %d script/link/img elements, want none (offline hosts)", len(s))
	}
}

func TestPage_globalSuspensionAndQuietNode(t *testing.T) {
	n := &node{st: status.Node{Suspension: status.Suspension{Global: true}, VirtualMachines: []kubevirtv1.VirtualMachine{
		vm("default", "web", kubevirtv1.VirtualMachineStatusRunning, true)}},
		descErr: errors.New("libvirt: connection refused")}
	doc := page(t, web.Handler(n, web.Options{Node: "node-b", RefreshSeconds: -1}))
	if !strings.Contains(text(byID(t, doc, "suspended")), "Reconciliation suspended") {
		t.Error("#suspended does not say reconciliation is suspended")
	}
	if got := cell(t, rows(t, doc, "vm-table", "data-vm")["default/web"], "suspended"); got != "suspended" {
		t.Errorf("under a node-wide suspension every VM is suspended; web shows %q", got)
	}
	if !strings.Contains(text(byID(t, doc, "node-error")), "libvirt: connection refused") {
		t.Error("#node-error does not show why the node cannot be described")
	}
	for _, id := range []string{"fetch-error", "reconcile-errors", "reboot-required", "reboot-banner", "holds", "differences"} {
		if hasID(doc, id) {
			t.Errorf("#%s shows on a node without one", id)
		}
	}
	byID(t, doc, "reboot-not-required")
	if m := find(doc, func(n *html.Node) bool { v, _ := attr(n, "http-equiv"); return v == "refresh" }); len(m) != 0 {
		t.Error("RefreshSeconds < 0 still reloads")
	}
}

func TestPage_hungDescriptionCostsOnlyTheNodeSection(t *testing.T) {
	n := sample(time.Now())
	n.hang = true
	start := time.Now()
	doc := page(t, web.WithDescribeTimeout(web.Handler(n, web.Options{Node: "node-a"}), 200*time.Millisecond))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the page took %s with a hung description", d)
	}
	if got := text(byID(t, doc, "node-error")); !strings.Contains(got, "describe the node: context deadline exceeded") {
		t.Errorf("#node-error = %q", got)
	}
	if len(rows(t, doc, "vm-table", "data-vm")) != 4 {
		t.Error("the VMs are missing when only the description hung")
	}
}

func TestPage_escapesHostileText(t *testing.T) {
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	n := &node{st: status.Node{
		Source:          status.Source{URL: `javascript:alert(1)"><b>`, FetchError: evil},
		VirtualMachines: []kubevirtv1.VirtualMachine{vm(`ns"><i>`, evil, kubevirtv1.VirtualMachinePrintableStatus(evil), false)},
	}, events: []status.Event{{Time: time.Now(), Type: status.Warning, Reason: evil, Message: evil}}}
	srv := httptest.NewServer(web.Handler(n, web.Options{Node: evil}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if s := find(doc, func(n *html.Node) bool {
		return n.Data == "script" || n.Data == "img" || n.Data == "b" || n.Data == "i"
	}); len(s) != 0 {
		t.Fatalf("hostile text became %d elements (%s):\n%s", len(s), s[0].Data, body)
	}
	for _, id := range []string{"node-name", "fetch-error"} {
		if !strings.Contains(text(byID(t, doc, id)), evil) {
			t.Errorf("#%s = %q, want the hostile text shown as text", id, text(byID(t, doc, id)))
		}
	}
	vms := rows(t, doc, "vm-table", "data-vm")
	row := vms[`ns"><i>/`+evil]
	if row == nil {
		t.Fatalf("the hostile VM's key is not its data-vm attribute: %v", vms)
	}
	if cell(t, row, "name") != evil || cell(t, row, "state") != evil {
		t.Errorf("hostile VM shows as name %q state %q", cell(t, row, "name"), cell(t, row, "state"))
	}
	if !strings.Contains(text(byID(t, doc, "event-table")), evil) {
		t.Error("the hostile event message is not shown as text")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want scripts forbidden", csp)
	}
}

func TestHandler_methodsAndPaths(t *testing.T) {
	srv := httptest.NewServer(web.Handler(sample(time.Now()), web.Options{Node: "node-a"}))
	defer srv.Close()

	get, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	getBody, _ := io.ReadAll(get.Body)
	get.Body.Close()

	head, err := http.Head(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	headBody, _ := io.ReadAll(head.Body)
	head.Body.Close()
	if head.StatusCode != http.StatusOK || len(headBody) != 0 {
		t.Errorf("HEAD / = %s with %d body bytes, want 200 and none", head.Status, len(headBody))
	}
	if head.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD Content-Type = %q", head.Header.Get("Content-Type"))
	}
	if head.ContentLength != int64(len(getBody)) {
		t.Errorf("HEAD Content-Length = %d, GET body is %d bytes", head.ContentLength, len(getBody))
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, srv.URL+"/", strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s / = %s, want 405", m, resp.Status)
		}
		if a := resp.Header.Get("Allow"); a != "GET, HEAD" {
			t.Errorf("%s / Allow = %q", m, a)
		}
	}
	resp, err := http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other = %s, want 404", resp.Status)
	}
}

func TestPage_manyEventsAreCut(t *testing.T) {
	now := time.Now()
	n := &node{}
	for i := range 500 {
		n.events = append(n.events, status.Event{Time: now.Add(time.Duration(i) * time.Second), Type: status.Normal, Reason: fmt.Sprintf("R%d", i)})
	}
	doc := page(t, web.Handler(n, web.Options{}))
	evs := find(byID(t, doc, "event-table"), func(n *html.Node) bool { return hasClass(n, "event") })
	if len(evs) != 200 {
		t.Fatalf("%d events shown, want the newest 200", len(evs))
	}
	if got := cell(t, evs[0], "reason"); got != "R499" {
		t.Errorf("first event %s, want the newest R499", got)
	}
	if got := text(byID(t, doc, "events")); !strings.Contains(got, "The newest 200 of 500") {
		t.Errorf("#events does not say it is cut: %q", got)
	}
}

func BenchmarkRender1000VMs(b *testing.B) {
	now := time.Now()
	n := sample(now)
	n.st.VirtualMachines = nil
	states := []kubevirtv1.VirtualMachinePrintableStatus{kubevirtv1.VirtualMachineStatusRunning,
		kubevirtv1.VirtualMachineStatusStopped, kubevirtv1.VirtualMachineStatusStarting, kubevirtv1.VirtualMachineStatusCrashLoopBackOff}
	for i := range 1000 {
		ns := fmt.Sprintf("team-%d", i%10)
		name := fmt.Sprintf("vm-%04d", i)
		n.st.VirtualMachines = append(n.st.VirtualMachines, vm(ns, name, states[i%len(states)], i%2 == 0))
		n.st.DataVolumes = append(n.st.DataVolumes, cdiv1.DataVolume{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-disk"},
			Status: cdiv1.DataVolumeStatus{Phase: cdiv1.Succeeded, Progress: "100.0%"}})
		if i%10 == 0 {
			n.st.Differences = append(n.st.Differences, status.Step{Stage: "vm", Action: "update", Object: "VirtualMachine " + ns + "/" + name, Reason: "cpu changed"})
		}
		n.events = append(n.events, status.Event{Time: now.Add(-time.Duration(i) * time.Second), Type: status.Normal, Reason: "Started", Object: "VirtualMachine " + ns + "/" + name, Message: "domain started"})
	}
	h := web.Handler(n, web.Options{Node: "node-a"})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("GET / = %d", w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}

// Requests within CacheFor share one render; after it, the page is new.
func TestPage_rendersAtMostOncePerCacheFor(t *testing.T) {
	n := sample(time.Now())
	h := web.Handler(n, web.Options{Node: "n1", CacheFor: 300 * time.Millisecond})
	state := func() string {
		return cell(t, rows(t, page(t, h), "vm-table", "data-vm")["default/web"], "state")
	}
	before := state()
	n.set(func(st *status.Node) {
		for i := range st.VirtualMachines {
			st.VirtualMachines[i].Status.PrintableStatus = kubevirtv1.VirtualMachineStatusPaused
		}
	})
	if got := state(); got != before {
		t.Fatalf("within CacheFor the page changed: %q -> %q", before, got)
	}
	time.Sleep(350 * time.Millisecond)
	if got := state(); got != "Paused" {
		t.Fatalf("after CacheFor the page shows %q, want Paused", got)
	}
}
