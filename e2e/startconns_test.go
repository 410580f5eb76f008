//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// ourLibvirtClients counts libvirtd's clients that are this process, as
// libvirtd's admin interface lists them.
func ourLibvirtClients(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("virt-admin", "srv-clients-list", "libvirtd").CombinedOutput()
	if err != nil {
		t.Fatalf("virt-admin srv-clients-list: %v\n%s", err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		info, err := exec.Command("virt-admin", "client-info", "libvirtd", f[0]).CombinedOutput()
		if err != nil {
			continue // gone meanwhile
		}
		for _, l := range strings.Split(string(info), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && strings.TrimSpace(k) == "unix_process_id" && strings.TrimSpace(v) == strconv.Itoa(os.Getpid()) {
				n++
			}
		}
	}
	return n
}

// TestLibvirt_startsOnConnectionsOfTheirOwn: on qemu:///system a start runs
// on a connection of its own, kept for the next start, so libvirt's quick
// calls on the main connection do not queue behind it. A start that fails
// gives its connection up; Close closes them all.
func TestLibvirt_startsOnConnectionsOfTheirOwn(t *testing.T) {
	newWorld(t) // libvirtd up, TCG noted
	ctx := context.Background()
	d, err := virt.Open(ctx, "qemu:///system")
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = d.Close()
		}
	})
	prefix := fmt.Sprintf("nvsc%d-", os.Getpid())
	domXML := func(name, devices string) string {
		return fmt.Sprintf(`<domain type="qemu"><name>%s</name><memory unit="MiB">32</memory>
<os><type arch="x86_64" machine="q35">hvm</type></os><devices>%s</devices></domain>`, name, devices)
	}
	names := []string{prefix + "a", prefix + "b", prefix + "bad"}
	t.Cleanup(func() {
		for _, n := range names {
			_, _ = virshOK("destroy", n)
			_, _ = virshOK("undefine", n)
		}
	})
	for _, n := range names[:2] {
		if err := d.Define(ctx, domXML(n, "")); err != nil {
			t.Fatal(err)
		}
	}
	missing := `<disk type="file" device="disk"><source file="/nonexistent/nodevirt-startconns.qcow2"/><target dev="vda" bus="virtio"/></disk>`
	if err := d.Define(ctx, domXML(names[2], missing)); err != nil {
		t.Fatal(err)
	}
	if n := ourLibvirtClients(t); n != 1 {
		t.Fatalf("%d connections to libvirtd before any start, want the driver's one", n)
	}

	for _, n := range names[:2] {
		if err := d.Start(ctx, n); err != nil {
			t.Fatalf("start %s: %v", n, err)
		}
		if s := domState(n); s != "running" {
			t.Fatalf("%s is %s after Start", n, s)
		}
	}
	if n := ourLibvirtClients(t); n != 2 {
		t.Fatalf("%d connections after two starts one after the other, want 2: the driver's and one start connection, kept and used again", n)
	}
	// A start of a running domain and of an unknown one keep it too.
	if err := d.Start(ctx, names[0]); err != nil {
		t.Fatalf("start of a running domain: %v", err)
	}
	if err := d.Start(ctx, prefix+"none"); !errors.Is(err, virt.ErrNotDefined) {
		t.Fatalf("start of an undefined domain: %v, want ErrNotDefined", err)
	}
	if n := ourLibvirtClients(t); n != 2 {
		t.Fatalf("%d connections after starts that found nothing to do, want 2", n)
	}

	if err := d.Start(ctx, names[2]); err == nil {
		t.Fatalf("start of %s with a missing disk succeeded", names[2])
	}
	if n := ourLibvirtClients(t); n != 1 {
		t.Fatalf("%d connections after a failed start, want 1: the start connection goes with the failure", n)
	}

	// The domains started on other connections are the driver's as any.
	doms, err := d.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, dom := range doms {
		if strings.HasPrefix(dom.Name, prefix) && dom.State.Active() {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("the driver lists %d of its 2 started domains as running", running)
	}

	if err := d.Start(ctx, names[1]); err != nil { // a start connection again
		t.Fatal(err)
	}
	closed = true
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	await(t, "every connection closed", 30*time.Second, func() bool { return ourLibvirtClients(t) == 0 })
}
