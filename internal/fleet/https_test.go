package fleet

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serveHTTPS serves the bare repository remote over real HTTPS with git's
// own smart-HTTP backend, pushes allowed, under a certificate of the test's
// own CA; it returns the repository's URL and that CA as PEM.
func serveHTTPS(t *testing.T, remote string) (string, []byte) {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git (which `make test` installs) is needed: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		// REMOTE_USER is what lets git-http-backend accept a push.
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(remote), "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=node"},
	}
	srv := httptest.NewUnstartedServer(backend)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case fails the handshake on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(remote), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// A remote whose certificate only the given CA bundle vouches for is
// published to and read with it, and refused without it.
func TestPublish_httpsWithCABundle(t *testing.T) {
	remote := bareRepo(t)
	url, ca := serveHTTPS(t, remote)
	ctx := context.Background()
	want := report("n1", "main@sha1:1111111111111111111111111111111111111111", "web")

	untrusted := &Branch{Remote: url, Name: "nodevirt-status", Dir: t.TempDir(), Attempts: 2}
	if _, err := untrusted.Publish(ctx, want); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("publish without the CA bundle: %v, want a certificate error", err)
	}
	b := &Branch{Remote: url, Name: "nodevirt-status", Dir: t.TempDir(), Attempts: 5, CABundle: ca}
	commit, err := b.Publish(ctx, want)
	if err != nil {
		t.Fatalf("publish with the CA bundle: %v", err)
	}
	if _, _, err := Read(ctx, url, "nodevirt-status", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("read without the CA bundle: %v, want a certificate error", err)
	}
	got, rev, err := Read(ctx, url, "nodevirt-status", nil, ca)
	if err != nil || rev != commit || !Equal(got["n1"], want) {
		t.Fatalf("read with the CA bundle: %v, revision %s (pushed %s), %+v", err, rev, commit, got["n1"])
	}
	// The branch's own read (fetch into its clone) goes through it too.
	if got, _, err := b.Read(ctx); err != nil || !Equal(got["n1"], want) {
		t.Fatalf("branch read: %v, %+v", err, got)
	}
}
