package hostfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runner runs host tools (update-grub, rpm-ostree, modprobe, ...).
type Runner interface {
	// Run runs name with args and returns its standard output. The error
	// carries the exit status and standard error.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
	// Has reports whether the tool exists in the host's PATH.
	Has(name string) bool
}

// Exec runs tools of the host below Root: directly when Root is "/", else
// chrooted into Root, so the tools, their configuration and /boot are the
// root's own (as `systemctl --root` reads the root's units).
type Exec struct {
	Root string
}

// sbinPath is where host tools live; the agent's own PATH may be narrower.
var sbinPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// Has looks name up in the root's system directories.
func (e Exec) Has(name string) bool {
	_, ok := e.lookPath(name)
	return ok
}

func (e Exec) lookPath(name string) (string, bool) {
	fsys := New(e.Root)
	for _, dir := range sbinPath {
		p := filepath.Join(dir, name)
		hp, err := fsys.resolved(p)
		if err != nil {
			continue
		}
		if st, err := os.Stat(hp); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// Run runs the tool inside the root.
func (e Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, ok := e.lookPath(name)
	if !ok {
		return nil, fmt.Errorf("%s: not found under %s", name, rootName(e.Root))
	}
	var cmd *exec.Cmd
	if e.Root == "" || filepath.Clean(e.Root) == "/" {
		cmd = exec.CommandContext(ctx, p, args...)
	} else {
		cmd = exec.CommandContext(ctx, "chroot", append([]string{e.Root, p}, args...)...)
	}
	cmd.Env = append(os.Environ(), "PATH="+strings.Join(sbinPath, ":"), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

func rootName(root string) string {
	if root == "" {
		return "/"
	}
	return root
}
