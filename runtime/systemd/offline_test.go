package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

func write(t *testing.T, root, p, content string) {
	t.Helper()
	if err := hostfs.New(root).WriteFile(p, []byte(content), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// Without systemd under the root, units are managed as `systemctl --root`
// does: [Install] symlinks and /dev/null masks; starting waits for boot.
func TestManager_offline(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	m := Open(ctx, root)
	if m.Live() || m.Offline() == "" {
		t.Fatalf("Live %v Offline %q; want offline with a reason", m.Live(), m.Offline())
	}
	write(t, root, "/etc/systemd/system/hostpath-provisioner.service", "[Unit]\nDescription=x\n\n[Service]\nExecStart=/usr/bin/chcon -Rt container_file_t /var/hpvolumes\n\n[Install]\nWantedBy=multi-user.target\nRequiredBy=kubelet.service\nAlias=hpp.service\n")
	write(t, root, "/lib/systemd/system/static.service", "[Service]\nExecStart=/bin/true\n")
	state := func(name string) string {
		t.Helper()
		s, err := m.UnitFileState(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := state("hostpath-provisioner.service"); s != "disabled" {
		t.Errorf("before enable: %s", s)
	}
	if s := state("static.service"); s != "static" {
		t.Errorf("static unit: %s", s)
	}
	if s := state("missing.service"); s != "not-found" {
		t.Errorf("missing unit: %s", s)
	}
	if err := m.Enable(ctx, "hostpath-provisioner.service"); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/hostpath-provisioner.service":  "/etc/systemd/system/hostpath-provisioner.service",
		"etc/systemd/system/kubelet.service.requires/hostpath-provisioner.service": "/etc/systemd/system/hostpath-provisioner.service",
		"etc/systemd/system/hpp.service":                                           "/etc/systemd/system/hostpath-provisioner.service",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %s", link, got, err, target)
		}
	}
	if s := state("hostpath-provisioner.service"); s != "enabled" {
		t.Errorf("after enable: %s", s)
	}
	if err := m.Disable(ctx, "hostpath-provisioner.service"); err != nil {
		t.Fatal(err)
	}
	if s := state("hostpath-provisioner.service"); s != "disabled" {
		t.Errorf("after disable: %s", s)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/hpp.service")); err == nil {
		t.Error("alias left after disable")
	}
	if err := m.Mask(ctx, "static.service"); err != nil {
		t.Fatal(err)
	}
	if s := state("static.service"); s != "masked" {
		t.Errorf("after mask: %s", s)
	}
	if err := m.Mask(ctx, "hostpath-provisioner.service"); err == nil {
		t.Error("masking over a unit file must fail")
	}
	if err := m.Unmask(ctx, "static.service"); err != nil {
		t.Fatal(err)
	}
	if s := state("static.service"); s != "static" {
		t.Errorf("after unmask: %s", s)
	}
	if _, err := m.Start(ctx, "static.service"); !errors.Is(err, ErrOffline) {
		t.Errorf("Start offline: %v, want ErrOffline", err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Errorf("Reload offline is a no-op: %v", err)
	}
}

func TestManager_offlineTemplateInstance(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	write(t, root, "/usr/lib/systemd/system/getty@.service", "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\n")
	m := Open(ctx, root)
	if err := m.Enable(ctx, "getty@tty2.service"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/getty.target.wants/getty@tty2.service")); got != "/usr/lib/systemd/system/getty@.service" {
		t.Errorf("instance link -> %q", got)
	}
}

func TestEscapeAddr(t *testing.T) {
	if got := escapeAddr("/proc/12/root/run/dbus/system bus"); got != "/proc/12/root/run/dbus/system%20bus" {
		t.Error(got)
	}
}
