package agent_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// fuzzHost is a fixed host for rendering, so a failure reproduces anywhere.
var fuzzHost = desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
	DiskDir: "/var/lib/nodevirt/disks", VolumeDir: "/var/lib/nodevirt/volumes"}}

// perInput bounds one input: decode, validate and render are linear in the
// input, which is small; far slower means a blow-up the bounds missed.
const perInput = 5 * time.Second

// FuzzDecodeValidateRender runs every stage a pushed file goes through
// before anything touches the host: decode and validate (manifests.Parse),
// the VMs' desired state (desired.Build), storage (storage.Build) and host
// configuration (nodeconfig.RenderFrom, with the same bytes also read as a
// Butane file). None may panic or take unbounded time. The examples are the
// seed corpus; found crashers live in testdata/fuzz.
func FuzzDecodeValidateRender(f *testing.F) {
	err := filepath.WalkDir("../../examples", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" || ext == ".bu" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f.Add(data)
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		set := manifests.Parse("fuzz.yaml", data, manifests.Options{})
		st := desired.Build(set, "fuzz", fuzzHost)
		storage.Build(set, storage.Options{Node: fuzzHost.Node})
		// No files directory: Butane must refuse local files, never read
		// them from the working directory.
		var bus []nodeconfig.ButaneFile
		if strings.Contains(string(data), "variant") {
			bus = append(bus, nodeconfig.ButaneFile{File: "fuzz.bu", Data: data})
		}
		nodeconfig.RenderFrom(set, "", bus, nodeconfig.NodeFor(set, fuzzHost.Node, "intel"))
		if set.Incomplete && !st.PruneSuspended {
			t.Fatal("an incomplete set must suspend pruning")
		}
		if d := time.Since(start); d > perInput {
			t.Fatalf("one %d-byte input took %s", len(data), d)
		}
	})
}
