package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodevirt/nodevirt/internal/flagconfig"
	"github.com/nodevirt/nodevirt/packaging"
	"github.com/nodevirt/nodevirt/runtime/atomicfile"
	"github.com/nodevirt/nodevirt/runtime/systemd"
)

// Where install puts things, under --root.
const (
	unitName    = "nodevirt.service"
	unitPath    = "/etc/systemd/system/" + unitName
	binaryPath  = "/usr/local/bin/nodevirt"
	configHead  = "nodevirt settings, written by nodevirt install.\nEvery flag of `nodevirt run` may be set here, by its name without the\ndashes (allowed-host-dirs: [/srv/images]); a flag on the command line\n(or in NODEVIRT_ARGS of /etc/default/nodevirt) wins over this file.\n`nodevirt config show` prints the settings in effect and where each\ncomes from.\n"
	serviceLogs = "json" // journald and log shippers parse one JSON object per line
)

// installOwn: install's own flags and the global ones that say how install
// runs, not how the service does.
func installOwn(name string) bool {
	switch name {
	case "force", "now", "config", "root", "output", "help":
		return true
	}
	return false
}

// installedFile is one file install looked after.
type installedFile struct {
	Path  string `json:"path"`
	State string `json:"state"` // created, updated or unchanged
	Note  string `json:"note,omitempty"`
}

type installReport struct {
	Changed bool            `json:"changed"`
	Files   []installedFile `json:"files"`
	// Service is what --now did to the unit: started, restarted or
	// running (already, with nothing changed).
	Service string `json:"service,omitempty"`
}

func (r *installReport) add(path, state, note string) {
	r.Files = append(r.Files, installedFile{Path: path, State: state, Note: note})
	if state != "unchanged" {
		r.Changed = true
	}
}

func newInstallCmd(o *options) *cobra.Command {
	var force, now bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install nodevirt as a systemd service: the binary, the unit, and " + defaultConfigPath + " holding the flags given here",
		Long: `Install copies this binary to ` + binaryPath + `, writes the systemd unit
` + unitPath + ` and the config file ` + defaultConfigPath + ` (mode 0600)
holding the flags of nodevirt run given to install, all under --root.
Each file is written only when its content differs; an existing config file
is kept unless --force (the old one then stays as config.yaml.bak).
With --now (only for --root /) systemd reloads, enables and starts the unit.`,
		Example:     "  nodevirt install --source https://git.example/vms.git --branch main --now",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotationConfig: "skip"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			root := filepath.Clean(o.root)
			if now && root != "/" {
				return fmt.Errorf("--now starts the service on this host; with --root %s there is none to start (enable it from that system)", o.root)
			}
			config, err := serviceConfig(cmd.Flags())
			if err != nil {
				return err
			}
			rep := &installReport{Files: []installedFile{}}
			if err := installFiles(root, config, force, rep); err != nil {
				return err
			}
			if now {
				if err := startService(cmd.Context(), rep); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, rep)
			}
			for _, f := range rep.Files {
				fmt.Fprintf(w, "%-9s  %s\n", f.State, f.Path)
				if f.Note != "" {
					fmt.Fprintf(w, "           %s\n", f.Note)
				}
			}
			if rep.Service != "" {
				fmt.Fprintf(w, "%-9s  %s\n", rep.Service, unitName)
			}
			return nil
		},
	}
	addRunFlags(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing config file (keeping the old one as config.yaml.bak)")
	cmd.Flags().BoolVar(&now, "now", false, "also reload systemd and enable and start (or restart, when something changed) the unit; only with --root /")
	return cmd
}

// serviceConfig is the config file for the flags of run set on install's
// command line, checked the way the service will read it: every key a flag
// of run, every value one its flag takes. The service logs JSON unless
// --log-format says otherwise.
func serviceConfig(flags *pflag.FlagSet) ([]byte, error) {
	file := &flagconfig.File{Path: "nodevirt install"}
	logFormat := false
	flags.Visit(func(f *pflag.Flag) {
		if installOwn(f.Name) {
			return
		}
		e := flagconfig.Entry{Key: f.Name}
		if v, ok := flagconfig.Value(f).([]string); ok {
			e.List, e.Items = true, v
		} else {
			e.Value = f.Value.String()
		}
		file.Entries = append(file.Entries, e)
		logFormat = logFormat || f.Name == "log-format"
	})
	if !logFormat {
		file.Entries = append(file.Entries, flagconfig.Entry{Key: "log-format", Value: serviceLogs})
	}
	slices.SortFunc(file.Entries, func(a, b flagconfig.Entry) int { return strings.Compare(a.Key, b.Key) })
	run, err := newRunFlags()
	if err != nil {
		return nil, err
	}
	applied, err := file.Apply(run)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(applied))
	for _, e := range applied {
		names = append(names, e.Key)
	}
	for _, e := range file.Entries {
		if !slices.Contains(names, e.Key) {
			return nil, fmt.Errorf("install: --%s is no flag of nodevirt run", e.Key)
		}
	}
	data, err := flagconfig.Encode(run, names, configHead)
	if err != nil {
		return nil, err
	}
	// What the service reads back must be what was given.
	back, err := flagconfig.Parse(defaultConfigPath, data)
	if err != nil {
		return nil, fmt.Errorf("install: the config written does not parse: %w", err)
	}
	if err := checkConfigKeys(newRootCmd(), back); err != nil {
		return nil, err
	}
	return data, nil
}

// installFiles puts the binary, the unit and the config file under root.
func installFiles(root string, config []byte, force bool, rep *installReport) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	bin := filepath.Join(root, binaryPath)
	state, err := installBinary(self, bin)
	if err != nil {
		return fmt.Errorf("install %s: %w", bin, err)
	}
	rep.add(bin, state, "")

	unit := filepath.Join(root, unitPath)
	if state, err = writeIfChanged(unit, []byte(packaging.Unit()), 0o644); err != nil {
		return fmt.Errorf("install %s: %w", unit, err)
	}
	rep.add(unit, state, "")

	cfg := filepath.Join(root, defaultConfigPath)
	old, err := os.ReadFile(cfg)
	switch {
	case errors.Is(err, fs.ErrNotExist), err == nil && bytes.Equal(old, config):
		// Nothing to keep: write (or fix the mode of) the file.
	case err != nil:
		return fmt.Errorf("read %s: %w", cfg, err)
	case !force:
		rep.add(cfg, "unchanged", "exists and differs from the settings given here: kept (--force replaces it, keeping the old one as config.yaml.bak)")
		return nil
	default:
		bak := cfg + ".bak"
		state, err := writeIfChanged(bak, old, 0o600)
		if err != nil {
			return fmt.Errorf("keep %s: %w", bak, err)
		}
		rep.add(bak, state, "")
	}
	if state, err = writeIfChanged(cfg, config, 0o600); err != nil {
		return fmt.Errorf("install %s: %w", cfg, err)
	}
	rep.add(cfg, state, "")
	return nil
}

// writeIfChanged writes data to path (atomically, with mode perm, making
// its directory 0755) when the file holds something else, and says what it
// did: created, updated or unchanged. A wrong mode alone is fixed as an
// update.
func writeIfChanged(path string, data []byte, perm os.FileMode) (string, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return fixMode(path, perm)
	}
	state := "updated"
	if errors.Is(err, fs.ErrNotExist) {
		state = "created"
	} else if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	err = atomicfile.Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	return state, err
}

func fixMode(path string, perm os.FileMode) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm() == perm {
		return "unchanged", nil
	}
	return "updated", os.Chmod(path, perm)
}

// installBinary copies the running binary src to dst unless dst is src
// or holds the same bytes.
func installBinary(src, dst string) (string, error) {
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return "unchanged", nil
		}
	}
	same, err := sameContent(src, dst)
	if err != nil {
		return "", err
	}
	if same {
		return fixMode(dst, 0o755)
	}
	state := "updated"
	if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
		state = "created"
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	// A rename, not a write in place: the old binary may be running.
	err = atomicfile.Write(dst, 0o755, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
	return state, err
}

// sameContent reports whether the files a and b hold the same bytes; an
// absent b differs.
func sameContent(a, b string) (bool, error) {
	fb, err := os.Open(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer fb.Close()
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	if sb, err := fb.Stat(); err != nil || sb.Size() != sa.Size() {
		return false, err
	}
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(fa, bufA)
		nb, errB := io.ReadFull(fb, bufB)
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == io.EOF || errB == io.ErrUnexpectedEOF, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, errB
		}
	}
}

// startService has the host's systemd re-read its units, enable nodevirt
// and start it, or restart it when install changed a file it runs with.
func startService(ctx context.Context, rep *installReport) error {
	m := systemd.Open(ctx, "/")
	defer m.Close()
	if !m.Live() {
		return fmt.Errorf("--now: %s", m.Offline())
	}
	// A notify unit counts as started once it said READY; no need to
	// watch it settle.
	m.Settle = 0
	filesChanged := rep.Changed
	if err := m.Reload(ctx); err != nil {
		return fmt.Errorf("--now: reload systemd: %w", err)
	}
	st, err := m.UnitFileState(ctx, unitName)
	if err != nil {
		return fmt.Errorf("--now: %w", err)
	}
	if st != "enabled" {
		if err := m.Enable(ctx, unitName); err != nil {
			return fmt.Errorf("--now: %w", err)
		}
		rep.Changed = true
	}
	props, err := m.Properties(ctx, unitName)
	if err != nil {
		return fmt.Errorf("--now: %w", err)
	}
	active := props["ActiveState"] == "active"
	start := m.Start
	rep.Service = "started"
	switch {
	case active && filesChanged:
		start, rep.Service = m.Restart, "restarted"
	case active:
		rep.Service = "running"
		return nil
	}
	props, err = start(ctx, unitName)
	if err != nil {
		return fmt.Errorf("--now: %w", err)
	}
	rep.Changed = true
	if props["Job"] != "done" || props["ActiveState"] != "active" {
		return fmt.Errorf("--now: %s %s: job %s, now %s (%s); see journalctl -u %s", rep.Service, unitName, props["Job"], props["ActiveState"], props["Result"], unitName)
	}
	return nil
}
