package virt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDomains_1000 lists 1,000 domains of libvirt's test driver, in
// process (test:///NODE) and behind libvirtd (test+unix:///NODE, private to
// the connection as with a node file), with and without the definition cache.
func BenchmarkDomains_1000(b *testing.B) {
	node := filepath.Join(b.TempDir(), "node.xml")
	if err := os.WriteFile(node, []byte(`<node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu><memory>16777216</memory></node>`), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, via := range []string{"inproc", "libvirtd"} {
		uri := "test://" + node
		if via == "libvirtd" {
			if _, err := os.Stat("/run/libvirt/libvirt-sock"); err != nil {
				continue
			}
			uri = "test+unix://" + node
		}
		for _, cached := range []bool{false, true} {
			name := fmt.Sprintf("%s/cached=%v", via, cached)
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				d, err := Open(ctx, uri)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				for i := range 1000 {
					x := testDomain(fmt.Sprintf("bench%04d", i), fmt.Sprintf("6f1c3f5e-0f6a-4b8e-9c43-%012d", i), "")
					if err := d.Define(ctx, x); err != nil {
						b.Fatal(err)
					}
				}
				if cached {
					d.CacheDefinitions()
				}
				if doms, err := d.Domains(ctx); err != nil || len(doms) != 1000 {
					b.Fatalf("listed %d domains, %v", len(doms), err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := d.Domains(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
