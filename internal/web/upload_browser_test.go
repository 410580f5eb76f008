//go:build e2e

package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/token"
	"github.com/nodevirt/nodevirt/internal/web"
	"github.com/nodevirt/nodevirt/internal/web/webtest"
)

// uploadNode is the page's node behind the real API: its upload
// DataVolumes' disks are files the uploads really write.
type uploadNode struct {
	*node
	dir     string
	version uint64
}

func (u *uploadNode) StatusVersion() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.version
}
func (u *uploadNode) Plan(context.Context) (report.Plan, error) { return report.Plan{}, nil }
func (u *uploadNode) VMAction(context.Context, string, string, string) (status.ActionResult, error) {
	return status.ActionResult{}, nil
}
func (u *uploadNode) Reconcile(context.Context) (status.ActionResult, error) {
	return status.ActionResult{}, nil
}
func (u *uploadNode) Suspend(context.Context, string, bool) (status.ActionResult, error) {
	return status.ActionResult{}, nil
}

func (u *uploadNode) UploadReady(_ context.Context, ns, name string) error {
	for _, dv := range u.Status().DataVolumes {
		if dv.Namespace == ns && dv.Name == name {
			if dv.Status.Phase == cdiv1.UploadReady {
				return nil
			}
			return api.Conflict(fmt.Errorf("DataVolume %s/%s is %s", ns, name, dv.Status.Phase))
		}
	}
	return api.NotFound(fmt.Errorf("no upload DataVolume %s/%s", ns, name))
}

func (u *uploadNode) Upload(ctx context.Context, ns, name string, r io.Reader, _ int64, _ bool) error {
	if err := u.UploadReady(ctx, ns, name); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(u.dir, ns+"-"+name+".img"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	u.set(func(st *status.Node) {
		for i := range st.DataVolumes {
			if st.DataVolumes[i].Namespace == ns && st.DataVolumes[i].Name == name {
				st.DataVolumes[i].Status.Phase = cdiv1.Succeeded
			}
		}
	})
	u.mu.Lock()
	u.version++
	u.mu.Unlock()
	return nil
}

// Uploading from the page as a person would: log in with a token, choose
// the DataVolume and the file, press Upload; the disk holds the file and
// the page shows the DataVolume Succeeded.
func TestBrowser_uploadFromThePage(t *testing.T) {
	n := &uploadNode{node: sample(time.Now()), dir: t.TempDir()}
	n.set(func(st *status.Node) {
		addUploadDV(st, "default", "upload-me", cdiv1.UploadReady)
	})
	state := t.TempDir()
	tokens, err := token.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.New(pki.Options{Dir: filepath.Join(state, "pki"), Lifetimes: pki.DefaultLifetimes(),
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Node: "node-a", Agent: n, Uploads: n,
		Page: web.Handler(n, web.Options{Node: "node-a", RefreshSeconds: 2, CacheFor: -1}),
		Token: func(s string) (string, time.Time, error) {
			info, err := tokens.Verify(s)
			return info.Name, info.Expires, err
		}})
	l, err := api.ListenTLS("127.0.0.1:0", certs.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); api.Serve(ctx, l, srv.Handler(), nil) }()
	t.Cleanup(func() { cancel(); <-done })
	secret, _, err := tokens.Create("web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 3<<20)
	rand.Read(img)
	imgPath := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}

	b := webtest.Start(t)
	if err := b.Open("https://" + l.Addr().String() + "/?token=" + secret); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#upload-dv", "default/upload-me (UploadReady)", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(b.Context(), webtest.ActionTimeout)
	defer scancel()
	if err := chromedp.Do(sctx,
		chromedp.SetValue(chromedp.CSS("#upload-dv"), "default/upload-me"),
		chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{imgPath}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
	); err != nil {
		t.Fatal(err)
	}
	// Past two reload intervals: the page did not reload mid-upload, it
	// waited for the outcome.
	if err := b.WaitText("#upload-status", "DataVolume default/upload-me: Succeeded", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(n.dir, "default-upload-me.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("the disk has %d bytes, want the file's %d", len(got), len(img))
	}
	if shot, err := b.Screenshot("upload-form"); err == nil {
		t.Logf("screenshot: %s", shot)
	}
	// Once done, the page reloads again and shows it in the table.
	if err := b.WaitText("#datavolumes tr[data-dv='default/upload-me'] td.phase", "Succeeded", 15*time.Second); err != nil {
		t.Fatal(err)
	}
}
