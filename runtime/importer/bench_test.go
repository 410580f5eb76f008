package importer

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchImage is a 1 GiB sparse raw disk with 32 MiB of random data in four
// places, xz compressed with `xz -T0 -1`, cached under /var/tmp so only the
// first run pays for making it.
func benchImage(b *testing.B) string {
	b.Helper()
	dir := "/var/tmp/nodevirt-bench"
	xzPath := filepath.Join(dir, "disk-1g.raw.xz")
	if _, err := os.Stat(xzPath); err == nil {
		return xzPath
	}
	if _, err := exec.LookPath("xz"); err != nil {
		b.Skip("xz is not installed (Debian package xz-utils)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	raw := filepath.Join(dir, "disk-1g.raw")
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, 8<<20)
	for _, off := range []int64{0, 256 << 20, 512 << 20, 768 << 20} {
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(1 << 30); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if msg, err := exec.Command("xz", "-T0", "-1", "-f", raw).CombinedOutput(); err != nil {
		b.Fatalf("xz: %v %s", err, msg)
	}
	return xzPath
}

func benchServer(b *testing.B, file string) string {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, file)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/disk-1g.raw.xz"
}

// BenchmarkImportXZ imports the 1 GiB xz-compressed raw image over loopback
// HTTP: download, decompression by the xz program (multi-threaded) and a
// sparse write; raw content needs no qemu-img.
func BenchmarkImportXZ(b *testing.B) { benchImport(b, Config{}) }

// BenchmarkImportXZGo is the same with the Go xz decoder (hosts without xz).
func BenchmarkImportXZGo(b *testing.B) { benchImport(b, Config{XZ: "-"}) }

func benchImport(b *testing.B, cfg Config) {
	url := benchServer(b, benchImage(b))
	dir := b.TempDir()
	target := filepath.Join(dir, "disk.img")
	im := New(cfg)
	b.SetBytes(1 << 30)
	for b.Loop() {
		if _, err := im.Import(context.Background(), Request{
			Source: Source{Kind: HTTP, URL: url}, Target: Target{Path: target, Size: 1 << 30},
		}); err != nil {
			b.Fatal(err)
		}
		_ = os.Remove(target)
	}
}

// BenchmarkCurlXzQemuImg is the shell pipeline for the same file: qemu-img
// cannot read a pipe ("'file' driver requires '/dev/stdin' to be a regular
// file"), so the decompressed image goes to a scratch file first, as CDI's
// scratch space does.
func BenchmarkCurlXzQemuImg(b *testing.B) {
	for _, tool := range []string{"curl", "xz", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed", tool)
		}
	}
	url := benchServer(b, benchImage(b))
	dir := b.TempDir()
	script := `set -e; curl -sf "$1" | xz -dc -T0 > "$2/scratch.raw"; qemu-img convert -f raw -O raw "$2/scratch.raw" "$2/disk.img"; rm -f "$2/scratch.raw" "$2/disk.img"`
	b.SetBytes(1 << 30)
	for b.Loop() {
		if msg, err := exec.Command("sh", "-c", script, "sh", url, dir).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, msg)
		}
	}
}
