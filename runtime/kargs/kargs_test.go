package kargs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// fakeRunner records calls and answers from a table; unexpected calls fail.
type fakeRunner struct {
	t     *testing.T
	tools map[string]bool
	out   map[string]string // "name args..." -> stdout
	calls []string
	hook  func(call string)
}

func (f *fakeRunner) Has(name string) bool { return f.tools[name] }

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	call := strings.TrimSpace(name + " " + strings.Join(args, " "))
	f.calls = append(f.calls, call)
	if f.hook != nil {
		f.hook(call)
	}
	if out, ok := f.out[call]; ok {
		return []byte(out), nil
	}
	if !f.tools[name] {
		f.t.Errorf("unexpected call %q", call)
		return nil, fmt.Errorf("unexpected call %q", call)
	}
	return nil, nil
}

func root(t *testing.T, files map[string]string) string {
	t.Helper()
	r := t.TempDir()
	for p, c := range files {
		if err := hostfs.New(r).WriteFile(p, []byte(c), 0o644, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// Back-ends are detected in the stated order.
func TestDetect_order(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		tools []string
		want  string
	}{
		{"ostree first", map[string]string{"/run/ostree-booted": "", "/etc/kernel/cmdline": "x", "/etc/default/grub": ""}, []string{"rpm-ostree", "grubby", "update-grub"}, "ostree"},
		{"systemd-boot loader.conf", map[string]string{"/boot/efi/loader/loader.conf": "", "/etc/default/grub": ""}, []string{"grubby", "update-grub"}, "systemd-boot"},
		{"systemd-boot cmdline without grub", map[string]string{"/etc/kernel/cmdline": "root=/dev/sda"}, []string{"kernel-install"}, "systemd-boot"},
		{"grubby over cmdline with grub", map[string]string{"/etc/kernel/cmdline": "x", "/boot/grub2/grub.cfg": ""}, []string{"grubby"}, "grubby"},
		{"grubby before debian", map[string]string{"/etc/default/grub": ""}, []string{"grubby", "update-grub"}, "grubby"},
		{"debian update-grub", nil, []string{"update-grub"}, "grub"},
		{"debian /etc/default/grub only", map[string]string{"/etc/default/grub": ""}, nil, "grub"},
		{"none", nil, nil, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tools := map[string]bool{}
			for _, x := range tc.tools {
				tools[x] = true
			}
			k := Detect(root(t, tc.files), &fakeRunner{t: t, tools: tools})
			if k.Name() != tc.want {
				t.Errorf("backend = %s, want %s", k.Name(), tc.want)
			}
		})
	}
}

func TestGrubDropin(t *testing.T) {
	ctx := context.Background()
	r := root(t, map[string]string{"/etc/default/grub": "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n", "/boot/grub/grub.cfg": "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1 root=/dev/vda ro quiet\n}\n"})
	run := &fakeRunner{t: t, tools: map[string]bool{"update-grub": true}}
	// update-grub regenerates grub.cfg from the drop-in, as the real one does.
	run.hook = func(call string) {
		if call != "update-grub" {
			return
		}
		b, _ := os.ReadFile(filepath.Join(r, DropinPath))
		args := ParseDropin(b)
		cfg := "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1 root=/dev/vda ro quiet " + strings.Join(args, " ") + "\n}\n"
		if err := os.WriteFile(filepath.Join(r, "boot/grub/grub.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k := Detect(r, run)
	if err := k.Stage(ctx, []string{"intel_iommu=on", `foo="a b"`}, nil); err != nil {
		t.Fatal(err)
	}
	want := "# Managed by nodevirt: kernel arguments from the source's MachineConfigs.\n" +
		"# grub-mkconfig (update-grub) reads it after /etc/default/grub; do not edit.\n" +
		`GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} intel_iommu=on foo=\"a b\""` + "\n"
	if got := string(mustRead(t, filepath.Join(r, DropinPath))); got != want {
		t.Errorf("drop-in:\n%s\nwant:\n%s", got, want)
	}
	staged, err := k.Staged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"root=/dev/vda", "ro", "quiet", "intel_iommu=on", `foo="a b"`}, staged); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}
	// An argument set in /etc/default/grub cannot be removed by a drop-in.
	if err := k.Stage(ctx, []string{"intel_iommu=on"}, []string{"quiet"}); err == nil || !strings.Contains(err.Error(), "/etc/default/grub") {
		t.Errorf("removing a foreign argument: %v", err)
	}
	// Dropping what nodevirt owns: the drop-in no longer has it.
	if err := k.Stage(ctx, []string{"intel_iommu=on"}, []string{`foo="a b"`}); err != nil {
		t.Fatal(err)
	}
	if got := ParseDropin(mustRead(t, filepath.Join(r, DropinPath))); !cmp.Equal(got, []string{"intel_iommu=on"}) {
		t.Errorf("drop-in args = %v", got)
	}
	if err := k.Stage(ctx, nil, []string{"intel_iommu=on"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r, DropinPath)); !os.IsNotExist(err) {
		t.Errorf("an empty list removes the drop-in: %v", err)
	}
	if n := strings.Count(strings.Join(run.calls, "\n"), "update-grub"); n != 3 {
		t.Errorf("update-grub ran %d times, want 3: %v", n, run.calls)
	}
}

func TestGrubDropin_withoutGrubTools(t *testing.T) {
	r := root(t, map[string]string{"/etc/default/grub": ""})
	k := Detect(r, &fakeRunner{t: t})
	if err := k.Stage(context.Background(), []string{"amd_iommu=on"}, nil); err != nil {
		t.Fatal(err)
	}
	staged, _ := k.Staged(context.Background())
	if !cmp.Equal(staged, []string{"amd_iommu=on"}) {
		t.Errorf("staged = %v (the drop-in, until grub.cfg is generated)", staged)
	}
}

func TestOstree(t *testing.T) {
	run := &fakeRunner{t: t, tools: map[string]bool{"rpm-ostree": true}, out: map[string]string{"rpm-ostree kargs": "rw root=UUID=1 intel_iommu=on\n"}}
	k := Detect(root(t, map[string]string{"/run/ostree-booted": ""}), run)
	staged, err := k.Staged(context.Background())
	if err != nil || !cmp.Equal(staged, []string{"rw", "root=UUID=1", "intel_iommu=on"}) {
		t.Errorf("staged = %v, %v", staged, err)
	}
	if err := k.Stage(context.Background(), []string{"intel_iommu=on", "iommu=pt"}, []string{"hugepages=4"}); err != nil {
		t.Fatal(err)
	}
	want := "rpm-ostree kargs --delete-if-present=hugepages=4 --append-if-missing=intel_iommu=on --append-if-missing=iommu=pt"
	if got := run.calls[len(run.calls)-1]; got != want {
		t.Errorf("call = %q\nwant   %q", got, want)
	}
}

func TestGrubby(t *testing.T) {
	run := &fakeRunner{t: t, tools: map[string]bool{"grubby": true}, out: map[string]string{"grubby --info=DEFAULT": "index=0\nkernel=\"/boot/vmlinuz-5.14\"\nargs=\"ro crashkernel=auto intel_iommu=on\"\nroot=\"/dev/sda\"\n"}}
	k := Detect(root(t, nil), run)
	staged, err := k.Staged(context.Background())
	if err != nil || !cmp.Equal(staged, []string{"ro", "crashkernel=auto", "intel_iommu=on"}) {
		t.Errorf("staged = %v, %v", staged, err)
	}
	if err := k.Stage(context.Background(), []string{"intel_iommu=on", "iommu=pt"}, []string{"quiet"}); err != nil {
		t.Fatal(err)
	}
	if got := run.calls[len(run.calls)-1]; got != "grubby --update-kernel=ALL --args=intel_iommu=on iommu=pt --remove-args=quiet" {
		t.Errorf("call = %q", got)
	}
}

func TestSystemdBoot(t *testing.T) {
	r := root(t, map[string]string{"/efi/loader/loader.conf": "", "/etc/kernel/cmdline": "root=/dev/nvme0n1p2 rw quiet\n",
		"/proc/sys/kernel/osrelease": "6.8.0\n", "/usr/lib/modules/6.8.0/vmlinuz": ""})
	run := &fakeRunner{t: t, tools: map[string]bool{"kernel-install": true}}
	k := Detect(r, run)
	if err := k.Stage(context.Background(), []string{"amd_iommu=on"}, []string{"quiet"}); err != nil {
		t.Fatal(err)
	}
	if got := string(mustRead(t, filepath.Join(r, "etc/kernel/cmdline"))); got != "root=/dev/nvme0n1p2 rw amd_iommu=on\n" {
		t.Errorf("cmdline = %q", got)
	}
	if !cmp.Equal(run.calls, []string{"kernel-install add 6.8.0 /usr/lib/modules/6.8.0/vmlinuz"}) {
		t.Errorf("calls = %v", run.calls)
	}
}

func TestRunning(t *testing.T) {
	k := Detect(root(t, map[string]string{"/proc/cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/vda ro console=ttyS0 foo=\"a b\"\n"}), &fakeRunner{t: t})
	got, err := k.Running()
	if err != nil || !cmp.Equal(got, []string{"BOOT_IMAGE=/vmlinuz", "root=/dev/vda", "ro", "console=ttyS0", `foo="a b"`}) {
		t.Errorf("running = %v, %v", got, err)
	}
	if k.Name() != "none" {
		t.Fatal(k.Name())
	}
	if err := k.Stage(context.Background(), []string{"x"}, nil); err != ErrNoBootLoader {
		t.Errorf("none: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
