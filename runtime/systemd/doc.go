// Package systemd manages systemd units of the host below a root directory.
// When a systemd runs as that root's PID 1 and its bus is reachable (the
// host's own, or a container's private socket at <root>/run/systemd/private)
// every operation goes through go-systemd's D-Bus API: daemon-reload,
// enable, disable, mask, unmask, start and restart with the job result and
// the unit's final Result. Otherwise it works offline with `systemctl
// --root` semantics: enabling creates the [Install] section's wants and
// alias symlinks, masking links the unit to /dev/null, and starting is
// refused with ErrOffline, since the unit takes effect at the next boot.
//
// This package must not import nodevirt's reconciler or manifests.
package systemd
