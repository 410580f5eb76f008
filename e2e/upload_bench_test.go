//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
)

// benchRaw writes a 1 GiB raw image of incompressible, non-zero data (no
// side may skip a block) to path.
func benchRaw(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	chunk := make([]byte, 4<<20)
	for off := int64(0); off < 1<<30; off += int64(len(chunk)) {
		for i := 0; i < len(chunk); i += 8 {
			v := rng.Uint64() | 1
			for k := range 8 {
				chunk[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload_1GiB: a 1 GiB raw image uploaded with CDI's protocol
// and a token into a DataVolume of the real agent (API, storage manager,
// importer: written, synced and renamed into place) on qemu:///system's
// host, over loopback HTTPS (https) and over the agent's socket (socket),
// next to `cp` (no reflink) and `sync` of the same file into a new file on
// the same file system in the same run. Per iteration the DataVolume is
// committed and reconciled untimed; the timed upload starts with the token
// request and ends with the disk complete. x-of-cp is the upload's speed
// as a share of cp's.
func BenchmarkUpload_1GiB(b *testing.B) {
	if _, err := exec.LookPath("cp"); err != nil {
		b.Skip("cp is not installed")
	}
	w := newWorld(b)
	w.commit("classes", map[string]string{"classes.yaml": storageClasses})
	w.startAgent("--interval", "1h", "--drift-interval", "1h")
	ctx := context.Background()
	sock := filepath.Join(w.state, api.SocketName)
	await(b, "the agent's socket", 60*time.Second, func() bool {
		c, err := api.Local(ctx, sock)
		var ready map[string]string
		return err == nil && c.Get(ctx, "/readyz", &ready) == nil
	})
	var v struct {
		Agent struct{ Listen string } `json:"agent"`
	}
	if err := json.Unmarshal([]byte(w.mustNodevirt("version", "-o", "json")), &v); err != nil || v.Agent.Listen == "" {
		b.Fatalf("no agent address: %v", err)
	}
	dir := filepath.Dir(w.state) // the file system the DataVolumes' disks are on
	tokenFile := filepath.Join(dir, "api.token")
	if err := os.WriteFile(tokenFile, []byte(w.mustNodevirt("token", "create", "--ttl", "1h")), 0o600); err != nil {
		b.Fatal(err)
	}
	remote, err := api.Remote(v.Agent.Listen, api.Credentials{TokenFile: tokenFile, CAFile: filepath.Join(w.state, "pki", "ca.crt")})
	if err != nil {
		b.Fatal(err)
	}
	local, err := api.Local(ctx, sock)
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(dir, "image.raw")
	benchRaw(b, src)
	copyTo := filepath.Join(dir, "copy.img")
	// https is image-upload from another machine; socket is image-upload on
	// the agent's host (no TLS).
	n := 0
	for _, via := range []struct {
		name string
		c    *api.Client
	}{{"https", remote}, {"socket", local}} {
		b.Run(via.name, func(b *testing.B) { benchUpload(b, w, via.c, src, copyTo, &n) })
	}
}

func benchUpload(b *testing.B, w *world, c *api.Client, src, copyTo string, n *int) {
	ctx := context.Background()
	var up, cp time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("bench%d", *n)
		*n++
		i++
		w.commit("add "+name, map[string]string{name + ".yaml": uploadDVYAML(name, "2Gi", "")})
		w.mustNodevirt("reconcile")
		await(b, name+" UploadReady", 2*time.Minute, func() bool {
			st, err := c.Status(ctx)
			if err != nil {
				return false
			}
			for _, dv := range st.DataVolumes {
				if dv.Name == name && dv.Status.Phase == "UploadReady" {
					return true
				}
			}
			return false
		})
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start := time.Now()
		tok, err := c.UploadToken(ctx, w.ns, name)
		if err == nil {
			err = c.Upload(ctx, "", tok, f, 1<<30, false)
		}
		up += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatalf("upload: %v", err)
		}

		// A new file each time, kept like the uploaded disk: a copy
		// over a file just deleted reuses its page cache, which
		// (in this VM) made cp three times as fast as into new pages.
		copyTo := fmt.Sprintf("%s-%d", copyTo, *n)
		start = time.Now()
		if msg, err := exec.Command("cp", "--reflink=never", src, copyTo).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, msg)
		}
		if msg, err := exec.Command("sync", copyTo).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, msg)
		}
		cp += time.Since(start)

		b.Cleanup(func() { _ = os.Remove(copyTo) })
	}
	b.StopTimer()
	gib := float64(i)
	b.ReportMetric(gib*1024/up.Seconds(), "MiB/s-upload")
	b.ReportMetric(gib*1024/cp.Seconds(), "MiB/s-cp")
	b.ReportMetric(cp.Seconds()/up.Seconds(), "x-of-cp")
}
