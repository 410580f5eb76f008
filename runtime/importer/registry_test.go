package importer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// testRegistry is an in-memory OCI registry (go-containerregistry's) over
// plain http or https with its own CA, optionally behind basic auth.
type testRegistry struct {
	*httptest.Server
	user, pass string
}

func newTestRegistry(t *testing.T, tls bool, user, pass string) *testRegistry {
	t.Helper()
	r := &testRegistry{user: user, pass: pass}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != r.user || p != r.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	r.Server = srv
	return r
}

func (r *testRegistry) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(r.URL, "https://"), "http://")
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// layer is a gzip-compressed tar holding files (path -> content; a nil
// content is a whiteout of that path).
func layer(t *testing.T, files map[string][]byte) (compressed, tarball []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	_ = tw.WriteHeader(&tar.Header{Name: "disk/", Typeflag: tar.TypeDir, Mode: 0o555})
	for name, data := range files {
		if data == nil {
			dir, base := filepath.Split(name)
			_ = tw.WriteHeader(&tar.Header{Name: dir + ".wh." + base, Typeflag: tar.TypeReg, Mode: 0o644})
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o440, Uid: 107, Gid: 107, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(tb.Bytes())
	_ = zw.Close()
	return zb.Bytes(), tb.Bytes()
}

// push uploads an image made of layers as repo:tag, like the seed's
// Dockerfile builds it (the disk under /disk/), with the raw registry API.
func (r *testRegistry) push(t *testing.T, repo, tag string, layers ...map[string][]byte) string {
	t.Helper()
	client := r.Client()
	do := func(method, url, ctype string, body []byte) *http.Response {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if r.user != "" {
			req.SetBasicAuth(r.user, r.pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
		}
		return resp
	}
	blob := func(b []byte) string {
		d := digestOf(b)
		resp := do(http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		if !strings.HasPrefix(loc, "http") {
			loc = r.URL + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		do(http.MethodPut, loc+sep+"digest="+d, "application/octet-stream", b).Body.Close()
		return d
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Size      int    `json:"size"`
		Digest    string `json:"digest"`
	}
	var ls []desc
	var diffIDs []string
	for _, files := range layers {
		z, tb := layer(t, files)
		ls = append(ls, desc{"application/vnd.docker.image.rootfs.diff.tar.gzip", len(z), blob(z)})
		diffIDs = append(diffIDs, digestOf(tb))
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": desc{"application/vnd.docker.container.image.v1+json", len(cfg), blob(cfg)},
		"layers": ls,
	})
	do(http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+tag, "application/vnd.docker.distribution.manifest.v2+json", m).Body.Close()
	return "docker://" + r.host() + "/" + repo + ":" + tag
}

// A containerDisk as the seed's Dockerfile builds it: qcow2 or raw under
// /disk/, pulled from an insecure registry or one with TLS, a custom CA and
// basic auth; imported through scratch space (the matrix says so).
func TestImport_registry(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	qcow := qcow2Of(t, raw)
	insecure := newTestRegistry(t, false, "", "")
	secure := newTestRegistry(t, true, "puller", "pw")

	for _, c := range []struct {
		name string
		src  func() Source
		want string
	}{
		{"insecure qcow2", func() Source {
			return Source{Kind: Registry, URL: insecure.push(t, "disks/cirros", "v1", map[string][]byte{"disk/cirros.qcow2": qcow}), Insecure: true}
		}, FormatQcow2},
		{"tls ca auth raw", func() Source {
			return Source{Kind: Registry, URL: secure.push(t, "disks/raw", "latest", map[string][]byte{"disk/disk.img": raw}),
				CA: secure.caPEM(), Username: "puller", Password: "pw"}
		}, FormatRaw},
		{"later layer replaces the disk", func() Source {
			return Source{Kind: Registry, URL: insecure.push(t, "disks/layered", "v2",
				map[string][]byte{"disk/old.img": rawImage(mib)},
				map[string][]byte{"disk/old.img": nil, "disk/new.qcow2": qcow}), Insecure: true}
		}, FormatQcow2},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			scratch := filepath.Join(t.TempDir(), "scratch")
			target := filepath.Join(dir, "disk.img")
			res, err := New(Config{}).Import(context.Background(), Request{Source: c.src(), Target: Target{Path: target, Size: 8 * mib}, Scratch: scratch})
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != c.want || res.Scratch == "" {
				t.Errorf("result %+v", res)
			}
			if !bytes.Equal(readN(t, target, len(raw)), raw) {
				t.Error("disk differs from the image's")
			}
			noLeftovers(t, dir, "disk.img")
			noLeftovers(t, scratch)
		})
	}
}

func (r *testRegistry) caPEM() []byte {
	return (&imageServer{Server: r.Server}).caPEM()
}

// What the matrix refuses, and what is not a containerDisk.
func TestImport_registryRefused(t *testing.T) {
	raw := rawImage(mib)
	reg := newTestRegistry(t, false, "", "")
	secure := newTestRegistry(t, true, "puller", "pw")
	for _, c := range []struct {
		name string
		src  Source
		want error
		msg  string
	}{
		{"gz disk", Source{Kind: Registry, URL: reg.push(t, "d/gz", "v1", map[string][]byte{"disk/d.img.gz": gz(t, raw)}), Insecure: true}, ErrUnsupported, "registry takes qcow2 and raw only"},
		{"two disks", Source{Kind: Registry, URL: reg.push(t, "d/two", "v1", map[string][]byte{"disk/a.img": raw, "disk/b.img": raw}), Insecure: true}, ErrFormat, "several files under /disk/"},
		{"no disk", Source{Kind: Registry, URL: reg.push(t, "d/none", "v1", map[string][]byte{"etc/x": raw}), Insecure: true}, ErrFormat, "no regular file under /disk/"},
		{"missing tag", Source{Kind: Registry, URL: "docker://" + reg.host() + "/d/none:nope", Insecure: true}, ErrNotFound, "404"},
		{"not insecure", Source{Kind: Registry, URL: "docker://" + reg.host() + "/d/none:v1"}, ErrUnreachable, "insecureRegistries"},
		{"wrong password", Source{Kind: Registry, URL: "docker://" + secure.host() + "/d/x:v1", CA: secure.caPEM(), Username: "puller", Password: "bad"}, ErrUnauthorized, "401"},
		{"oci-archive", Source{Kind: Registry, URL: "oci-archive:///tmp/x.tar"}, ErrUnsupported, "oci-archive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := New(Config{}).Import(context.Background(), Request{Source: c.src, Target: Target{Path: filepath.Join(dir, "disk.img"), Size: 4 * mib}, Scratch: t.TempDir()})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v; want %v containing %q", err, c.want, c.msg)
			}
			noLeftovers(t, dir)
		})
	}
}
