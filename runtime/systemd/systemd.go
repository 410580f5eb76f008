package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// ErrOffline: no running systemd manages the root; the change takes effect
// at the next boot.
var ErrOffline = errors.New("systemd is not running under the root; the unit takes effect at boot")

// Manager manages the units of one root.
type Manager struct {
	root string
	fs   *hostfs.FS
	conn *sddbus.Conn
	why  string
	// Settle bounds how long Start and Restart wait for a unit to finish
	// (a oneshot or a short-lived simple service) before reporting it as
	// running.
	Settle time.Duration
}

// Open connects to the systemd of root when one runs there (sd_booted:
// <root>/run/systemd/system exists) and works offline otherwise. It never
// fails: Live and Offline say which mode it is in and why.
func Open(ctx context.Context, root string) *Manager {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	m := &Manager{root: root, fs: hostfs.New(root), Settle: 2 * time.Minute}
	if st, err := os.Stat(filepath.Join(root, "run/systemd/system")); err != nil || !st.IsDir() {
		m.why = "systemd is not running under " + root + " (no /run/systemd/system)"
		return m
	}
	var err error
	if root == "/" {
		m.conn, err = sddbus.NewWithContext(ctx)
	} else {
		// A container's bus daemon takes connections from the host; its
		// systemd's private socket may not (nspawn: peer outside its PID
		// namespace), so it is the fallback.
		m.conn, err = dial(ctx, filepath.Join(root, "run/dbus/system_bus_socket"), true)
		if err != nil {
			var err2 error
			if m.conn, err2 = dial(ctx, filepath.Join(root, "run/systemd/private"), false); err2 == nil {
				err = nil
			}
		}
	}
	if err != nil {
		m.conn = nil
		m.why = fmt.Sprintf("systemd bus under %s unreachable: %v", root, err)
	}
	return m
}

// dial connects to a bus socket: a bus daemon's (hello) or systemd's
// private one (no Hello).
func dial(ctx context.Context, socket string, hello bool) (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.Dial("unix:path="+escapeAddr(socket), dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if hello {
			if err := c.Hello(); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	})
}

// escapeAddr escapes a D-Bus address value (optionally-escaped bytes are
// [-0-9A-Za-z_/.\*]; the rest are %xx).
func escapeAddr(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || c == '_' || c == '/' || c == '.' || c == '\\' || c == '*' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// Live reports whether a running systemd is reachable.
func (m *Manager) Live() bool { return m.conn != nil }

// Offline says why the manager works offline ("" when live).
func (m *Manager) Offline() string { return m.why }

// Close closes the bus connection.
func (m *Manager) Close() {
	if m.conn != nil {
		m.conn.Close()
	}
}

// Reload makes systemd re-read unit files (daemon-reload).
func (m *Manager) Reload(ctx context.Context) error {
	if m.conn == nil {
		return nil
	}
	return m.conn.ReloadContext(ctx)
}

// UnitFileState is systemctl is-enabled's answer: enabled, enabled-runtime,
// linked, alias, masked, static, indirect, disabled, generated, transient,
// or not-found.
func (m *Manager) UnitFileState(ctx context.Context, name string) (string, error) {
	if m.conn == nil {
		return m.offlineState(name)
	}
	props, err := m.conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", name, err)
	}
	if s, _ := props["LoadState"].(string); s == "masked" {
		return "masked", nil
	}
	s, _ := props["UnitFileState"].(string)
	if s == "" {
		if ls, _ := props["LoadState"].(string); ls == "not-found" {
			return "not-found", nil
		}
		// Loaded from a path systemd has not classified (e.g. just written
		// before a reload): read the links ourselves.
		return m.offlineState(name)
	}
	return s, nil
}

// Enable enables the unit ([Install] symlinks).
func (m *Manager) Enable(ctx context.Context, name string) error {
	if m.conn == nil {
		return m.offlineEnable(name, 0)
	}
	_, _, err := m.conn.EnableUnitFilesContext(ctx, []string{name}, false, true)
	if err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	return nil
}

// Disable removes the unit's [Install] symlinks.
func (m *Manager) Disable(ctx context.Context, name string) error {
	if m.conn == nil {
		return m.offlineDisable(name)
	}
	if _, err := m.conn.DisableUnitFilesContext(ctx, []string{name}, false); err != nil {
		return fmt.Errorf("disable %s: %w", name, err)
	}
	return nil
}

// Mask links the unit to /dev/null.
func (m *Manager) Mask(ctx context.Context, name string) error {
	if m.conn == nil {
		return m.offlineMask(name)
	}
	if _, err := m.conn.MaskUnitFilesContext(ctx, []string{name}, false, true); err != nil {
		return fmt.Errorf("mask %s: %w", name, err)
	}
	return nil
}

// Unmask removes a /dev/null mask.
func (m *Manager) Unmask(ctx context.Context, name string) error {
	if m.conn == nil {
		return m.offlineUnmask(name)
	}
	if _, err := m.conn.UnmaskUnitFilesContext(ctx, []string{name}, false); err != nil {
		return fmt.Errorf("unmask %s: %w", name, err)
	}
	return nil
}

// Start starts the unit, waits for its job and then for the unit to settle
// (a oneshot or short-lived service to finish, within Settle), and returns
// its properties (see Properties) plus "Job", the job's result (done,
// failed, dependency, skipped, timeout, canceled).
func (m *Manager) Start(ctx context.Context, name string) (map[string]string, error) {
	return m.run(ctx, name, m.conn.StartUnitContext)
}

// Restart restarts (or starts) the unit and waits like Start.
func (m *Manager) Restart(ctx context.Context, name string) (map[string]string, error) {
	return m.run(ctx, name, m.conn.RestartUnitContext)
}

// Stop stops the unit and waits for the job.
func (m *Manager) Stop(ctx context.Context, name string) error {
	if m.conn == nil {
		return ErrOffline
	}
	ch := make(chan string, 1)
	if _, err := m.conn.StopUnitContext(ctx, name, "replace", ch); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			return fmt.Errorf("stop %s: job %s", name, r)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

func (m *Manager) run(ctx context.Context, name string, job jobFunc) (map[string]string, error) {
	if m.conn == nil {
		return nil, ErrOffline
	}
	ch := make(chan string, 1)
	if _, err := job(ctx, name, "replace", ch); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var result string
	select {
	case result = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	deadline := time.Now().Add(m.Settle)
	for {
		props, err := m.Properties(ctx, name)
		if err != nil {
			return nil, err
		}
		props["Job"] = result
		if settled(props) || time.Now().After(deadline) {
			return props, nil
		}
		select {
		case <-ctx.Done():
			return props, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settled: the unit is no longer starting and, if it is a service whose
// main process still runs, that is its steady state only once Settle ends.
func settled(p map[string]string) bool {
	switch p["ActiveState"] {
	case "inactive", "failed":
		return true
	case "active":
		return p["SubState"] != "running" && p["SubState"] != "start"
	}
	return false
}

// Properties returns the unit's state as strings: LoadState, ActiveState,
// SubState, UnitFileState, ConditionResult ("true"/"false"), and for
// services Type, Result and ExecMainStatus.
func (m *Manager) Properties(ctx context.Context, name string) (map[string]string, error) {
	out := map[string]string{}
	if m.conn == nil {
		return out, nil
	}
	props, err := m.conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", name, err)
	}
	for _, k := range []string{"LoadState", "ActiveState", "SubState", "UnitFileState", "ConditionResult"} {
		if v, ok := props[k]; ok {
			out[k] = fmt.Sprint(v)
		}
	}
	if strings.HasSuffix(name, ".service") && out["LoadState"] == "loaded" {
		sp, err := m.conn.GetUnitTypePropertiesContext(ctx, name, "Service")
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", name, err)
		}
		for _, k := range []string{"Type", "Result", "ExecMainStatus"} {
			if v, ok := sp[k]; ok {
				out[k] = fmt.Sprint(v)
			}
		}
	}
	return out, nil
}

// Reboot asks systemd to reboot the host.
func (m *Manager) Reboot(ctx context.Context) error {
	if m.conn == nil {
		return ErrOffline
	}
	ch := make(chan string, 1)
	_, err := m.conn.StartUnitContext(ctx, "reboot.target", "replace-irreversibly", ch)
	return err
}
