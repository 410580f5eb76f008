package kargs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/nodeconfig/cmdline"
	"io/fs"
	"strings"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// DropinPath is the GRUB drop-in nodevirt owns. grub-mkconfig sources
// /etc/default/grub, then every /etc/default/grub.d/*.cfg in order.
const DropinPath = "/etc/default/grub.d/nodevirt.cfg"

const dropinHeader = "# Managed by nodevirt: kernel arguments from the source's MachineConfigs.\n" +
	"# grub-mkconfig (update-grub) reads it after /etc/default/grub; do not edit.\n"

// grubDropin: Debian and Ubuntu GRUB.
type grubDropin struct {
	fs  *hostfs.FS
	run hostfs.Runner
}

func (*grubDropin) Name() string { return "grub" }

// Staged reads the default (first) entry of the generated grub.cfg: that is
// what the next boot uses. Without a grub.cfg (or an entry in it) only the
// drop-in's own arguments are known.
func (g *grubDropin) Staged(ctx context.Context) ([]string, error) {
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		b, err := g.fs.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if args, ok := firstLinuxArgs(b); ok {
			return args, nil
		}
	}
	return g.dropinArgs()
}

// firstLinuxArgs returns the arguments of the first "linux" line of a
// grub.cfg (the kernel path is dropped).
func firstLinuxArgs(cfg []byte) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := cmdline.Split(sc.Text())
		if len(f) >= 2 && (f[0] == "linux" || f[0] == "linuxefi" || f[0] == "linux16") {
			return f[2:], true
		}
	}
	return nil, false
}

func (g *grubDropin) dropinArgs() ([]string, error) {
	b, err := g.fs.ReadFile(DropinPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseDropin(b), nil
}

// ParseDropin returns the arguments nodevirt's drop-in appends.
func ParseDropin(b []byte) []string {
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "GRUB_CMDLINE_LINUX_DEFAULT=")
		if !ok {
			continue
		}
		v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
		v = strings.TrimPrefix(v, "${GRUB_CMDLINE_LINUX_DEFAULT}")
		return cmdline.Split(unescapeShell(v))
	}
	return nil
}

// Dropin renders the drop-in for args.
func Dropin(args []string) []byte {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = escapeShell(a)
	}
	return []byte(dropinHeader + `GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} ` + strings.Join(quoted, " ") + "\"\n")
}

var shellEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")

func escapeShell(s string) string { return shellEscaper.Replace(s) }

func unescapeShell(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Stage writes the drop-in with want (the arguments nodevirt owns; what it
// dropped is simply no longer there) and regenerates grub.cfg. Arguments
// set elsewhere (/etc/default/grub) cannot be removed from a drop-in.
func (g *grubDropin) Stage(ctx context.Context, want, drop []string) error {
	mine := map[string]bool{}
	for _, a := range want {
		mine[a] = true
	}
	if staged, err := g.Staged(ctx); err == nil {
		owned, _ := g.dropinArgs()
		ownedSet := map[string]bool{}
		for _, a := range owned {
			ownedSet[a] = true
		}
		have := map[string]bool{}
		for _, a := range staged {
			have[a] = true
		}
		var foreign []string
		for _, d := range drop {
			if have[d] && !ownedSet[d] && !mine[d] {
				foreign = append(foreign, d)
			}
		}
		if len(foreign) > 0 {
			return fmt.Errorf("kernel arguments %s are set outside nodevirt's GRUB drop-in (/etc/default/grub); remove them there", strings.Join(foreign, " "))
		}
	}
	if len(want) == 0 {
		if err := g.fs.Remove(DropinPath); err != nil {
			return err
		}
	} else if err := g.fs.WriteFile(DropinPath, Dropin(want), 0o644, 0, 0); err != nil {
		return err
	}
	return g.regenerate(ctx)
}

func (g *grubDropin) regenerate(ctx context.Context) error {
	switch {
	case g.run.Has("update-grub"):
		_, err := g.run.Run(ctx, "update-grub")
		return err
	case g.run.Has("grub-mkconfig"):
		for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
			if exists(g.fs, p) {
				_, err := g.run.Run(ctx, "grub-mkconfig", "-o", p)
				return err
			}
		}
		_, err := g.run.Run(ctx, "grub-mkconfig", "-o", "/boot/grub/grub.cfg")
		return err
	}
	return nil // no GRUB tools: the drop-in takes effect when grub.cfg is next generated
}
