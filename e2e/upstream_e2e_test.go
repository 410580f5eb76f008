//go:build e2e

package e2e

import (
	"os/exec"
	"runtime"
	"testing"

	"libvirt.org/go/libvirt"
)

// TestUpstreamManifests_libvirt is TestUpstreamManifests with libvirt as
// the judge of every domain rendered: each passes virt-xml-validate and a
// define with VALIDATE on qemu:///system (then is undefined), under a
// corpus name so none collides with a real domain.
func TestUpstreamManifests_libvirt(t *testing.T) {
	require(t, Root, Libvirtd)
	validator, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatalf("virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	conn, err := libvirt.NewConnect("qemu:///system")
	if err != nil {
		t.Fatalf("connect qemu:///system: %v", err)
	}
	defer conn.Close()
	define := func(name, xml string) error { return corpusDefineOnce(conn, validator, name, xml) }

	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}[runtime.GOARCH]
	ctx := upstreamContext(t, corpusDomainType(t), arch)
	checkExpectKeys(t, checkUpstream(t, upstreamGroups(t), ctx, define, 80))
	t.Run("kubevirt-examples", func(t *testing.T) {
		checkUpstream(t, corpusGroup(t), ctx, define, 20)
	})
}
