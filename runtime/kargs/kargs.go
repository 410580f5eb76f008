// Package kargs stages kernel arguments through the host's boot loader and
// reads the running ones. Back-ends are detected in this order, each behind
// the Backend interface:
//
//  1. ostree (/run/ostree-booted): rpm-ostree kargs, as the Machine Config
//     Daemon does;
//  2. systemd-boot (a loader.conf on the ESP, or /etc/kernel/cmdline without
//     GRUB): /etc/kernel/cmdline, then kernel-install for the running kernel;
//  3. grubby (RHEL, Fedora with BLS entries): grubby --update-kernel=ALL;
//  4. Debian GRUB: a drop-in, /etc/default/grub.d/nodevirt.cfg, then
//     update-grub (or grub-mkconfig) when present.
//
// Every path is below a root and every tool runs inside it (hostfs.Exec), so
// tests use fake roots and a fake runner. It never reboots. This package
// must not import nodevirt's reconciler or manifests.
package kargs

import (
	"context"
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/nodeconfig/cmdline"
	"io/fs"
	"strings"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// Backend stages kernel arguments for the next boot.
type Backend interface {
	// Name is ostree, systemd-boot, grubby, grub or none.
	Name() string
	// Staged returns the arguments the next boot will use.
	Staged(ctx context.Context) ([]string, error)
	// Stage makes want present and drop absent for the next boot. want is
	// the whole list nodevirt owns; drop holds arguments it owned before and
	// arguments the source wants gone.
	Stage(ctx context.Context, want, drop []string) error
}

// ErrNoBootLoader: no supported boot loader was found under the root.
var ErrNoBootLoader = errors.New("no supported boot loader found (looked for ostree, systemd-boot, grubby, GRUB's update-grub or /etc/default/grub)")

// Kargs is the kernel-argument back-end of one root.
type Kargs struct {
	fs *hostfs.FS
	Backend
}

// Detect picks the back-end for root; run runs its tools inside root.
func Detect(root string, run hostfs.Runner) *Kargs {
	f := hostfs.New(root)
	return &Kargs{fs: f, Backend: detect(f, run)}
}

func exists(f *hostfs.FS, p string) bool {
	_, err := f.Lstat(p)
	return err == nil
}

func detect(f *hostfs.FS, run hostfs.Runner) Backend {
	if exists(f, "/run/ostree-booted") {
		return &ostree{run: run}
	}
	grub := exists(f, "/boot/grub/grub.cfg") || exists(f, "/boot/grub2/grub.cfg")
	for _, esp := range []string{"/boot", "/efi", "/boot/efi"} {
		if exists(f, esp+"/loader/loader.conf") {
			return &systemdBoot{fs: f, run: run}
		}
	}
	if exists(f, "/etc/kernel/cmdline") && !grub && !run.Has("grubby") {
		return &systemdBoot{fs: f, run: run}
	}
	if run.Has("grubby") {
		return &grubby{run: run}
	}
	if run.Has("update-grub") || run.Has("grub-mkconfig") || exists(f, "/etc/default/grub") {
		return &grubDropin{fs: f, run: run}
	}
	return none{}
}

// Running returns the arguments the host booted with (<root>/proc/cmdline).
func (k *Kargs) Running() ([]string, error) {
	b, err := k.fs.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("read /proc/cmdline: %w", err)
	}
	return cmdline.Split(string(b)), nil
}

// merge returns base without drop, then want's missing arguments appended.
func merge(base, want, drop []string) []string {
	dropSet := map[string]bool{}
	for _, d := range drop {
		dropSet[d] = true
	}
	var out []string
	have := map[string]bool{}
	for _, a := range base {
		if dropSet[a] {
			continue
		}
		out = append(out, a)
		have[a] = true
	}
	for _, a := range want {
		if !have[a] {
			out = append(out, a)
			have[a] = true
		}
	}
	return out
}

type none struct{}

func (none) Name() string { return "none" }
func (none) Staged(context.Context) ([]string, error) {
	return nil, ErrNoBootLoader
}
func (none) Stage(context.Context, []string, []string) error { return ErrNoBootLoader }

// ostree: rpm-ostree kargs on CoreOS and other ostree hosts.
type ostree struct{ run hostfs.Runner }

func (*ostree) Name() string { return "ostree" }

func (o *ostree) Staged(ctx context.Context) ([]string, error) {
	out, err := o.run.Run(ctx, "rpm-ostree", "kargs")
	if err != nil {
		return nil, err
	}
	return cmdline.Split(string(out)), nil
}

func (o *ostree) Stage(ctx context.Context, want, drop []string) error {
	var args []string
	for _, d := range drop {
		args = append(args, "--delete-if-present="+d)
	}
	for _, w := range want {
		args = append(args, "--append-if-missing="+w)
	}
	if len(args) == 0 {
		return nil
	}
	_, err := o.run.Run(ctx, "rpm-ostree", append([]string{"kargs"}, args...)...)
	return err
}

// grubby: BLS entries on RHEL and Fedora.
type grubby struct{ run hostfs.Runner }

func (*grubby) Name() string { return "grubby" }

func (g *grubby) Staged(ctx context.Context) ([]string, error) {
	out, err := g.run.Run(ctx, "grubby", "--info=DEFAULT")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "args="); ok {
			return cmdline.Split(strings.Trim(v, `"`)), nil
		}
	}
	return nil, fmt.Errorf("grubby --info=DEFAULT printed no args= line")
}

func (g *grubby) Stage(ctx context.Context, want, drop []string) error {
	args := []string{"--update-kernel=ALL"}
	if len(want) > 0 {
		args = append(args, "--args="+strings.Join(want, " "))
	}
	if len(drop) > 0 {
		args = append(args, "--remove-args="+strings.Join(drop, " "))
	}
	if len(args) == 1 {
		return nil
	}
	_, err := g.run.Run(ctx, "grubby", args...)
	return err
}

// systemdBoot: /etc/kernel/cmdline is what kernel-install writes into new
// boot entries; the running kernel's entry is rewritten with kernel-install.
type systemdBoot struct {
	fs  *hostfs.FS
	run hostfs.Runner
}

func (*systemdBoot) Name() string { return "systemd-boot" }

func (s *systemdBoot) Staged(ctx context.Context) ([]string, error) {
	for _, p := range []string{"/etc/kernel/cmdline", "/usr/lib/kernel/cmdline", "/proc/cmdline"} {
		b, err := s.fs.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var out []string
		for _, a := range cmdline.Split(string(b)) {
			if !strings.HasPrefix(a, "BOOT_IMAGE=") && !strings.HasPrefix(a, "initrd=") {
				out = append(out, a)
			}
		}
		return out, nil
	}
	return nil, nil
}

func (s *systemdBoot) Stage(ctx context.Context, want, drop []string) error {
	base, err := s.Staged(ctx)
	if err != nil {
		return err
	}
	line := strings.Join(merge(base, want, drop), " ") + "\n"
	if err := s.fs.WriteFile("/etc/kernel/cmdline", []byte(line), 0o644, 0, 0); err != nil {
		return err
	}
	if !s.run.Has("kernel-install") {
		return nil
	}
	rel, err := s.fs.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Errorf("running kernel version: %w", err)
	}
	ver := strings.TrimSpace(string(rel))
	for _, img := range []string{"/usr/lib/modules/" + ver + "/vmlinuz", "/boot/vmlinuz-" + ver} {
		if exists(s.fs, img) {
			_, err := s.run.Run(ctx, "kernel-install", "add", ver, img)
			return err
		}
	}
	return fmt.Errorf("/etc/kernel/cmdline updated, but no kernel image for %s to run kernel-install with", ver)
}
