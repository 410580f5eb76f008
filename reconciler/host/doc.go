// Package host makes the host's configuration match a rendered
// nodeconfig.HostConfig: files, systemd units, kernel arguments, VFIO device
// binding and SELinux labels. Diff is pure and returns a Plan of typed
// actions with field-level changes; Apply executes a Plan in the Machine
// Config Daemon's order (files and units, enablement, stale files, kernel
// arguments; then devices, unit starts and the reboot notice) and rolls back
// the files and unit states it changed when a step of the first part fails.
//
// What nodevirt wrote, the originals it replaced and the kernel arguments it
// owns are kept in a record under a state directory (like the MCD's
// /etc/machine-config-daemon), so files that leave the source are removed or
// restored and drift is told apart from pending changes.
//
// It declares the interfaces it needs (Files, Units, KernelArgs, Devices,
// SELinux) and must not import runtime drivers; cmd/nodevirt wires them in.
package host
