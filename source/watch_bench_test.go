package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDirWatch_saveToNotify is the watched directory's share of a
// save's latency: one op is an editor-style save (a temporary file renamed
// over the manifest) until Watch's notification, in a tree of 100 files.
// The debounce's quiet period is most of it.
func BenchmarkDirWatch_saveToNotify(b *testing.B) {
	root := b.TempDir()
	for i := range 100 {
		writeFile(b, filepath.Join(root, fmt.Sprintf("vms/vm%03d.yaml", i)), "kind: VirtualMachine\n")
	}
	d := openDir(b, Options{URL: root})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify, errs, err := d.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	target := filepath.Join(root, "vms/vm000.yaml")
	tmp := target + ".tmp"
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "kind: VirtualMachine\nv: %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := os.Rename(tmp, target); err != nil {
			b.Fatal(err)
		}
		select {
		case <-notify:
		case err := <-errs:
			b.Fatal(err)
		}
	}
}
