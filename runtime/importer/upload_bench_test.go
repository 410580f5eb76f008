package importer

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// rawFile writes a 1 GiB raw image of incompressible, non-zero data (so
// neither side may skip a block) into dir.
func rawFile(b *testing.B, dir string) string {
	b.Helper()
	p := filepath.Join(dir, "image.raw")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(3, 4))
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
	return p
}

// BenchmarkUpload_raw1GiB measures an upload of a 1 GiB raw image through
// the importer (read from a file as the HTTP body would be, written to the
// target's partial file, synced and renamed) next to `cp` of the same file
// on the same file system, in the same run: the metric x_cp is the
// importer's speed as a share of cp's (the goal is at least 0.7).
func BenchmarkUpload_raw1GiB(b *testing.B) {
	if _, err := exec.LookPath("cp"); err != nil {
		b.Skip("cp is not installed")
	}
	dir := b.TempDir()
	src := rawFile(b, dir)
	im := New(Config{})
	var imp, cp time.Duration
	b.ResetTimer()
	for range b.N {
		target := filepath.Join(dir, "disk.img")
		copyTo := filepath.Join(dir, "copy.img")
		_ = os.Remove(target)
		_ = os.Remove(copyTo)

		start := time.Now()
		// cp does not reflink here (--reflink=never) and syncs like the
		// importer does, so both write every byte to the disk.
		if msg, err := exec.Command("cp", "--reflink=never", src, copyTo).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, msg)
		}
		if msg, err := exec.Command("sync", copyTo).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, msg)
		}
		cp += time.Since(start)

		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		_, err = im.Import(context.Background(), Request{
			Source: Source{Kind: Upload, Reader: f, Size: 1 << 30},
			Target: Target{Path: target, Size: 1 << 30},
		})
		imp += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gib := float64(b.N)
	b.ReportMetric(gib/imp.Seconds()*1024, "MiB/s_upload")
	b.ReportMetric(gib/cp.Seconds()*1024, "MiB/s_cp")
	b.ReportMetric(cp.Seconds()/imp.Seconds(), "x_cp")
}
