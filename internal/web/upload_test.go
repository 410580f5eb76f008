package web_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/web"
)

// addUploadDV adds an upload DataVolume and its claim as the agent shows
// them: no spec, and CDI's upload-server-ready annotation on the claim
// while it takes an upload.
func addUploadDV(st *status.Node, ns, name string, phase cdiv1.DataVolumePhase) {
	st.DataVolumes = append(st.DataVolumes, cdiv1.DataVolume{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: cdiv1.DataVolumeStatus{Phase: phase}})
	claim := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if phase == cdiv1.UploadReady || phase == cdiv1.Failed {
		claim.Annotations = map[string]string{"cdi.kubevirt.io/storage.pod.ready": "true"}
	}
	st.PersistentVolumeClaims = append(st.PersistentVolumeClaims, claim)
}

// The form lists the upload DataVolumes that take an upload now (ready,
// or failed and so ready for another try), its script is the only one
// and the Content-Security-Policy allows it by its hash; the page reloads
// by script then, and by the meta refresh only without script.
func TestPage_uploadFormListsTheDataVolumesThatTakeAnUpload(t *testing.T) {
	n := sample(time.Now())
	n.set(func(st *status.Node) {
		addUploadDV(st, "default", "ready", cdiv1.UploadReady)
		addUploadDV(st, "prod", "retry", cdiv1.Failed)
		addUploadDV(st, "default", "done", cdiv1.Succeeded)
		addUploadDV(st, "default", "scheduled", cdiv1.UploadScheduled)
		// An import that failed takes no upload.
		st.DataVolumes = append(st.DataVolumes, cdiv1.DataVolume{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "http"},
			Status: cdiv1.DataVolumeStatus{Phase: cdiv1.Failed}})
	})
	h := web.Handler(n, web.Options{Node: "node-a"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, o := range find(byID(t, doc, "upload-dv"), func(n *html.Node) bool { return n.Data == "option" }) {
		v, _ := attr(o, "value")
		opts = append(opts, v)
	}
	if got := strings.Join(opts, ","); got != "default/ready,prod/retry" {
		t.Errorf("upload targets %s, want default/ready,prod/retry", got)
	}
	scripts := find(doc, func(n *html.Node) bool { return n.Data == "script" })
	if len(scripts) != 1 {
		t.Fatalf("%d scripts, want the upload form's one", len(scripts))
	}
	sum := sha256.Sum256([]byte(scripts[0].FirstChild.Data))
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") ||
		!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not allow exactly the page's script", csp)
	}
	for _, m := range find(doc, func(n *html.Node) bool { v, _ := attr(n, "http-equiv"); return v == "refresh" }) {
		if m.Parent == nil || m.Parent.Data != "noscript" {
			t.Error("a meta refresh outside noscript would reload the page in the middle of an upload")
		}
	}
	if r, _ := attr(byID(t, doc, "upload"), "data-refresh"); r != "5" {
		t.Errorf("the script reloads every %q seconds, want 5", r)
	}

	// Nothing to upload into: no form, no script.
	n.set(func(st *status.Node) {
		st.DataVolumes = st.DataVolumes[:len(st.DataVolumes)-5]
		st.PersistentVolumeClaims = st.PersistentVolumeClaims[:len(st.PersistentVolumeClaims)-4]
	})
	time.Sleep(1100 * time.Millisecond) // past the page cache
	doc = page(t, h)
	if s := find(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "form" }); len(s) != 0 {
		t.Errorf("a page with no upload target has %d script/form elements", len(s))
	}
}
