package source

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serveHTTPS serves the test repository over real HTTPS with git's own
// smart-HTTP backend (CGI), accepting basic auth alice/s3cret-pass or the
// bearer token tok-123456. It returns the repository URL and a CA file
// trusting the server.
func serveHTTPS(t *testing.T, r *gitRepo) (repoURL, caFile string) {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.bare), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, basic := req.BasicAuth()
		if !(basic && user == "alice" && pass == "s3cret-pass") && req.Header.Get("Authorization") != "Bearer tok-123456" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	// The untrusted-server case makes the handshake fail on purpose.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return srv.URL + "/" + filepath.Base(r.bare), caFile
}

func TestGit_https(t *testing.T) {
	r := newGitRepo(t)
	h := r.commit(map[string]string{"a.yaml": "v: 1\n"})
	repoURL, ca := serveHTTPS(t, r)
	ctx := context.Background()
	secrets := t.TempDir()
	pwFile, tokFile := filepath.Join(secrets, "password"), filepath.Join(secrets, "token")
	writeFile(t, pwFile, "s3cret-pass\n")
	writeFile(t, tokFile, "tok-123456\n")

	for _, tc := range []struct {
		name    string
		url     string
		auth    Auth
		wantErr string
	}{
		{"basic auth", repoURL, Auth{Username: "alice", Password: "s3cret-pass", CAFile: ca}, ""},
		{"credentials in the URL", strings.Replace(repoURL, "https://", "https://alice:s3cret-pass@", 1), Auth{CAFile: ca}, ""},
		{"bearer token", repoURL, Auth{BearerToken: "tok-123456", CAFile: ca}, ""},
		{"password file", repoURL, Auth{Username: "alice", PasswordFile: pwFile, CAFile: ca}, ""},
		{"bearer token file", repoURL, Auth{BearerTokenFile: tokFile, CAFile: ca}, ""},
		{"wrong password", repoURL, Auth{Username: "alice", Password: "wr0ng-pass", CAFile: ca}, "authentication required"},
		{"untrusted server", repoURL, Auth{Username: "alice", Password: "s3cret-pass"}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := openGit(t, Options{URL: tc.url, WorkDir: t.TempDir(), Auth: tc.auth})
			s, err := g.Fetch(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				for _, secret := range []string{"s3cret-pass", "wr0ng-pass", "tok-123456"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks %q: %v", secret, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := "main@sha1:" + h; s.Revision != want {
				t.Errorf("Revision = %q, want %q", s.Revision, want)
			}
			if s2, err := g.Fetch(ctx); err != nil || s2 != s || g.clones != 1 {
				t.Errorf("second Fetch = %+v, %v (clones %d); want the same snapshot without a clone", s2, err, g.clones)
			}
			if strings.Contains(g.String(), "s3cret-pass") {
				t.Errorf("String() leaks the password: %s", g)
			}
		})
	}
}
