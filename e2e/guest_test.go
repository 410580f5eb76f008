//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// This file builds and watches the tiny guests of the fidelity tests. Images
// are made at test time, from files of Debian packages hack/setup.sh
// installs, into guestCacheRoot (nothing binary is committed):
//   - a BIOS-bootable ISO (isolinux, syslinux-common, xorriso) with the
//     Debian kernel (linux-image-amd64) and an initramfs (written here, newc
//     cpio) holding a static busybox (busybox-static), the i6300esb, ACPI
//     button and evdev modules and testdata/guest/init;
//   - a FAT disk (mtools) whose EFI boot loader is that kernel, for Secure Boot.
// It also reads a running domain's serial console and libvirt's event stream.

// guestHeartbeat is the i6300esb timeout the guest arms, in seconds.
const guestHeartbeat = 5

// guestCacheRoot holds built guest images, one directory per hash of the
// inputs, so a run builds each image once (well under a second) and later
// runs reuse it. It must be readable by QEMU's user (libvirt-qemu): the
// images are containerDisk backing files.
const guestCacheRoot = "/var/tmp/nodevirt-e2e-guest"

var (
	guestOnce sync.Once
	guestISO  string
	guestErr  error
)

// watchdogGuestISO returns the path of a BIOS-bootable ISO (isolinux) whose
// kernel boots an initramfs with busybox and the i6300esb module: its /init
// arms /dev/watchdog (heartbeat guestHeartbeat s) once, never feeds it, and
// prints "nodevirt-guest: …" lines on ttyS0. Missing packages are a missing
// precondition (failing under CI=true, as require does).
func watchdogGuestISO(t *testing.T) string {
	t.Helper()
	guestOnce.Do(func() { guestISO, guestErr = buildWatchdogGuest() })
	if guestErr != nil {
		if pe, ok := guestErr.(preconditionError); ok {
			missingPrecondition(t, string(pe))
		}
		t.Fatalf("building the watchdog guest: %v", guestErr)
	}
	return guestISO
}

// preconditionError is a guest input the host lacks; `make test` installs it.
type preconditionError string

func (p preconditionError) Error() string { return string(p) }

// guestInputs are the host files the guest is made of.
type guestInputs struct {
	kernel, release string
	modules         []string // load order: dependencies first
	busybox         string
	isolinux        string
	ldlinux         string
}

// guestKernelRoot is where hack/setup.sh unpacks Debian's kernel package for
// the test guests: unpacked, not installed, so hosts get no kernel,
// initramfs-tools or udev from the test set-up.
const guestKernelRoot = "/var/cache/nodevirt/guest-kernel"

func findGuestInputs() (guestInputs, error) {
	var in guestInputs
	// A Debian kernel with i6300esb as a module: the generic flavour has it,
	// linux-image-cloud-amd64 does not (CONFIG_I6300ESB_WDT is unset there).
	kernels, _ := filepath.Glob(filepath.Join(guestKernelRoot, "boot", "vmlinuz-*"))
	slices.Sort(kernels)
	for i := len(kernels) - 1; i >= 0; i-- {
		rel := strings.TrimPrefix(filepath.Base(kernels[i]), "vmlinuz-")
		if mods, err := guestModules(rel); err == nil {
			in.kernel, in.release, in.modules = kernels[i], rel, mods
			break
		}
	}
	if in.kernel == "" {
		return in, preconditionError("no Debian kernel with the i6300esb module under " + guestKernelRoot + "; `make test` unpacks linux-image-amd64 there (hack/setup.sh)")
	}
	in.busybox = "/bin/busybox"
	if err := isStatic(in.busybox); err != nil {
		return in, preconditionError("a static /bin/busybox is needed for the guest's initramfs (" + err.Error() + "); `make test` installs busybox-static")
	}
	in.isolinux = "/usr/lib/ISOLINUX/isolinux.bin"
	in.ldlinux = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	for _, f := range []struct{ path, pkg string }{{in.isolinux, "isolinux"}, {in.ldlinux, "syslinux-common"}} {
		if _, err := os.Stat(f.path); err != nil {
			return in, preconditionError(f.path + " is missing; `make test` installs " + f.pkg)
		}
	}
	if _, err := exec.LookPath("xorriso"); err != nil {
		return in, preconditionError("xorriso is not installed; `make test` installs it")
	}
	return in, nil
}

// guestModules are the modules the guest loads, with their dependencies, in
// load order: the watchdog driver, and the ACPI power button with evdev for
// busybox acpid.
func guestModules(release string) ([]string, error) {
	var out []string
	for _, name := range []string{"i6300esb", "button", "evdev"} {
		mods, err := moduleWithDeps(release, name)
		if err != nil {
			return nil, err
		}
		for _, m := range mods {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// moduleWithDeps resolves a module and its dependencies from modules.dep,
// in load order. Only uncompressed modules are handled (Debian 12's).
func moduleWithDeps(release, name string) ([]string, error) {
	base := filepath.Join(guestKernelRoot, "lib", "modules", release)
	f, err := os.Open(filepath.Join(base, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok || filepath.Base(mod) != name+".ko" {
			continue
		}
		var out []string
		ds := strings.Fields(deps)
		// modprobe loads the listed dependencies last to first.
		for i := len(ds) - 1; i >= 0; i-- {
			out = append(out, filepath.Join(base, ds[i]))
		}
		out = append(out, filepath.Join(base, mod))
		for _, m := range out {
			if !strings.HasSuffix(m, ".ko") {
				return nil, fmt.Errorf("%s is compressed; the guest builder loads plain .ko files", m)
			}
			if _, err := os.Stat(m); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s not in %s/modules.dep", name, base)
}

func isStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

func buildWatchdogGuest() (string, error) {
	in, err := findGuestInputs()
	if err != nil {
		return "", err
	}
	initScript, err := os.ReadFile("testdata/guest/init")
	if err != nil {
		return "", err
	}
	initScript = bytes.ReplaceAll(initScript, []byte("@HEARTBEAT@"), []byte(strconv.Itoa(guestHeartbeat)))
	cfg, err := os.ReadFile("testdata/guest/isolinux.cfg")
	if err != nil {
		return "", err
	}

	// The cache key covers every byte that goes into the image.
	h := sha256.New()
	fmt.Fprintf(h, "nodevirt-e2e-guest v1\x00")
	for _, b := range [][]byte{initScript, cfg} {
		fmt.Fprintf(h, "%d\x00", len(b))
		h.Write(b)
	}
	for _, p := range append([]string{in.kernel, in.busybox, in.isolinux, in.ldlinux}, in.modules...) {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	dir := filepath.Join(guestCacheRoot, hex.EncodeToString(h.Sum(nil))[:16])
	iso := filepath.Join(dir, "guest.iso")
	if _, err := os.Stat(iso); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: keep it from pruneGuestCache
		return iso, nil
	}

	if err := os.MkdirAll(guestCacheRoot, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(guestCacheRoot, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(guestCacheRoot, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	for _, d := range []string{"isolinux", "boot"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return "", err
		}
	}
	copies := map[string]string{
		in.kernel:   "boot/vmlinuz",
		in.isolinux: "isolinux/isolinux.bin",
		in.ldlinux:  "isolinux/ldlinux.c32",
	}
	for src, dst := range copies {
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tree, dst), b, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "isolinux/isolinux.cfg"), cfg, 0o644); err != nil {
		return "", err
	}
	initrd, err := guestInitramfs(in, initScript)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "boot/initrd.gz"), initrd, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "guest.iso")
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", out, "-V", "NODEVIRT_GUEST", "-R",
		"-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
		"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", tree)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("xorriso: %v\n%s", err, b)
	}
	if err := os.Chmod(out, 0o644); err != nil {
		return "", err
	}
	// Publish atomically (rename within guestCacheRoot): another test binary
	// may build the same image at the same time.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(out, iso); err != nil {
		return "", err
	}
	pruneGuestCache(dir)
	return iso, nil
}

// pruneGuestCache removes images built from other inputs (an older kernel,
// an earlier /init) once they are a day old: a run in progress elsewhere
// may still use a recent one.
func pruneGuestCache(keep string) {
	entries, _ := os.ReadDir(guestCacheRoot)
	for _, e := range entries {
		p := filepath.Join(guestCacheRoot, e.Name())
		if p == keep || !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(p)
		}
	}
}

var (
	efiDiskOnce sync.Once
	efiDiskPath string
	efiDiskErr  error
)

// untrustedEFIDisk returns a raw FAT image (no partition table, which UEFI
// reads as a whole-disk file system) whose \EFI\BOOT\BOOTX64.EFI is the
// Debian kernel: an EFI application signed by Debian's key, which the
// Microsoft keys OVMF enrolls for Secure Boot do not trust. With Secure Boot
// enforced OVMF refuses it ("Access Denied"); without, it starts it.
func untrustedEFIDisk(t *testing.T) string {
	t.Helper()
	efiDiskOnce.Do(func() { efiDiskPath, efiDiskErr = buildEFIDisk() })
	if efiDiskErr != nil {
		if pe, ok := efiDiskErr.(preconditionError); ok {
			missingPrecondition(t, string(pe))
		}
		t.Fatalf("building the EFI disk: %v", efiDiskErr)
	}
	return efiDiskPath
}

func buildEFIDisk() (string, error) {
	in, err := findGuestInputs()
	if err != nil {
		return "", err
	}
	for _, tool := range []string{"mformat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", preconditionError(tool + " is not installed; `make test` installs mtools")
		}
	}
	kernel, err := os.ReadFile(in.kernel)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "nodevirt-e2e-efi-disk v1\x00%d\x00", len(kernel))
	h.Write(kernel)
	dir := filepath.Join(guestCacheRoot, hex.EncodeToString(h.Sum(nil))[:16])
	img := filepath.Join(dir, "efi-untrusted.img")
	if _, err := os.Stat(img); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: keep it from pruneGuestCache
		return img, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(guestCacheRoot, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-*.img")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	// FAT16 with room to spare; a whole number of MiB.
	size := (int64(len(kernel))>>20 + 8) << 20
	if err := tmp.Truncate(size); err != nil {
		tmp.Close()
		return "", err
	}
	tmp.Close()
	for _, args := range [][]string{
		{"mformat", "-i", tmp.Name(), "-v", "NODEVIRTEFI", "::"},
		{"mmd", "-i", tmp.Name(), "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", tmp.Name(), in.kernel, "::/EFI/BOOT/BOOTX64.EFI"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), img); err != nil {
		return "", err
	}
	pruneGuestCache(dir)
	return img, nil
}

// guestInitramfs is a gzip'd newc cpio archive: /init, a static busybox,
// the modules and /dev/console for the kernel's first open.
func guestInitramfs(in guestInputs, initScript []byte) ([]byte, error) {
	var raw bytes.Buffer
	cw := &cpioWriter{w: &raw}
	for _, d := range []string{"bin", "dev", "proc", "sys", "lib", "lib/modules"} {
		cw.dir(d)
	}
	cw.charDev("dev/console", 5, 1)
	cw.file("init", 0o755, initScript)
	bb, err := os.ReadFile(in.busybox)
	if err != nil {
		return nil, err
	}
	cw.file("bin/busybox", 0o755, bb)
	cw.symlink("bin/sh", "busybox")
	for i, m := range in.modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		// /init loads them in the order of their names.
		cw.file(fmt.Sprintf("lib/modules/%02d-%s", i, filepath.Base(m)), 0o644, b)
	}
	cw.trailer()
	if cw.err != nil {
		return nil, cw.err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// cpioWriter writes the "newc" format the kernel unpacks into its rootfs.
type cpioWriter struct {
	w   io.Writer
	ino int
	n   int64
	err error
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.n += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	nlink := 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) dir(name string) { c.entry(name, syscall.S_IFDIR|0o755, nil, 0, 0) }
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.entry(name, syscall.S_IFREG|perm, data, 0, 0)
}
func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, syscall.S_IFLNK|0o777, []byte(target), 0, 0)
}
func (c *cpioWriter) charDev(name string, major, minor int) {
	c.entry(name, syscall.S_IFCHR|0o600, nil, major, minor)
}
func (c *cpioWriter) trailer() { c.entry("TRAILER!!!", 0, nil, 0, 0) }

// serialConsole reads a running domain's <serial type='pty'> from the pty
// libvirt reports in the live XML. `virsh console` refuses to run without a
// controlling terminal, and QEMU drops serial output while no one has the
// pty open, so the test opens it itself as soon as the domain runs; the
// guests here print for seconds after that, so nothing they are judged by is
// lost. The pty is set raw: otherwise the line discipline would echo the
// guest's output back to it as input.
type serialConsole struct {
	dom  string
	path string
	f    *os.File
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// attachConsole opens the serial console of the running domain dom. The
// reader ends when the domain stops (the pty hangs up).
func attachConsole(t *testing.T, dom string) *serialConsole {
	t.Helper()
	live, err := virshOK("dumpxml", dom)
	if err != nil {
		t.Fatalf("dumpxml %s: %v\n%s", dom, err, live)
	}
	path := serialPty(live)
	if path == "" {
		t.Fatalf("domain %s has no serial pty in its live XML:\n%s", dom, live)
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open serial console of %s: %v", dom, err)
	}
	if err := makeRaw(f); err != nil {
		f.Close()
		t.Fatalf("serial console of %s: %v", dom, err)
	}
	c := &serialConsole{dom: dom, path: path, f: f, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *serialConsole) close() {
	c.f.Close()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
}

func (c *serialConsole) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// await waits until the console shows want n times (n counted over the
// whole output read so far) and returns the time it took.
func (c *serialConsole) await(t *testing.T, want string, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if strings.Count(c.text(), want) >= n {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serial console of %s (%s): %q not seen %d times within %s; it shows:\n%s",
		c.dom, c.path, want, n, timeout, lastChars(stripTerminal(c.text()), 3000))
	return 0
}

func serialPty(liveXML string) string {
	var d struct {
		Serials []struct {
			Type   string `xml:"type,attr"`
			Source struct {
				Path string `xml:"path,attr"`
			} `xml:"source"`
		} `xml:"devices>serial"`
	}
	if xml.Unmarshal([]byte(liveXML), &d) != nil {
		return ""
	}
	for _, s := range d.Serials {
		if s.Type == "pty" && s.Source.Path != "" {
			return s.Source.Path
		}
	}
	return ""
}

func makeRaw(f *os.File) error {
	var tio syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		return fmt.Errorf("TCGETS: %w", e)
	}
	tio.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	tio.Oflag &^= syscall.OPOST
	tio.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	tio.Cflag &^= syscall.CSIZE | syscall.PARENB
	tio.Cflag |= syscall.CS8
	tio.Cc[syscall.VMIN] = 1
	tio.Cc[syscall.VTIME] = 0
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		return fmt.Errorf("TCSETS: %w", e)
	}
	return nil
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;=?]*[A-Za-z]`)

// stripTerminal strips terminal escapes (OVMF clears the screen) and carriage returns.
func stripTerminal(s string) string {
	s = ansiEscape.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\r", "")
}

func lastChars(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// libvirtEvents records `virsh event --all --loop` for the whole test:
// lifecycle events carry the reason a domain stopped ("Stopped Failed",
// "Stopped Shutdown", …) even when the agent restarts it before anyone
// could ask domstate, and watchdog events show the watchdog fired.
type libvirtEvents struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	buf bytes.Buffer
}

func watchEvents(t *testing.T) *libvirtEvents {
	t.Helper()
	e := &libvirtEvents{}
	e.cmd = exec.Command("virsh", "-c", "qemu:///system", "event", "--all", "--loop", "--timestamp")
	e.cmd.Stdout = lockedBuffer{&e.mu, &e.buf}
	e.cmd.Stderr = lockedBuffer{&e.mu, &e.buf}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("virsh event: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = e.cmd.Process.Kill()
		<-done
	})
	// virsh registers its callbacks right after connecting; give it that moment.
	time.Sleep(300 * time.Millisecond)
	return e
}

// of returns the event lines of one domain, without the timestamp.
func (e *libvirtEvents) of(dom string) []string {
	e.mu.Lock()
	all := e.buf.String()
	e.mu.Unlock()
	var out []string
	needle := "for domain '" + dom + "'"
	for _, l := range strings.Split(all, "\n") {
		if i := strings.Index(l, "event '"); i >= 0 && strings.Contains(l, needle) {
			out = append(out, l[i:])
		}
	}
	return out
}

func (e *libvirtEvents) count(dom, substr string) int {
	n := 0
	for _, l := range e.of(dom) {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// await waits until n events of dom contain substr.
func (e *libvirtEvents) await(t *testing.T, dom, substr string, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if e.count(dom, substr) >= n {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("libvirt events of %s: %q not seen %d times within %s; events:\n%s",
		dom, substr, n, timeout, strings.Join(e.of(dom), "\n"))
	return 0
}

// liveDomID is the running domain's id ("-" when it is not running).
func liveDomID(dom string) string {
	out, err := virshOK("domid", dom)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// domStateReason is `virsh domstate --reason`, e.g. "shut off (crashed)".
func domStateReason(dom string) string {
	out, err := virshOK("domstate", "--reason", dom)
	if err != nil {
		return "absent"
	}
	return strings.SplitN(out, "\n", 2)[0]
}

// libvirtQEMULog is libvirt's per-domain QEMU log (command lines and QEMU's stderr).
func libvirtQEMULog(dom string) string {
	b, _ := os.ReadFile(filepath.Join("/var/log/libvirt/qemu", dom+".log"))
	return string(b)
}

// lastQEMUStart is the part of a QEMU log from its last "starting up" line on.
func lastQEMUStart(log string) string {
	if i := strings.LastIndex(log, ": starting up "); i >= 0 {
		if j := strings.LastIndex(log[:i], "\n"); j >= 0 {
			return log[j+1:]
		}
	}
	return log
}

// kvmHasSMM asks /dev/kvm for KVM_CAP_X86_SMM: QEMU refuses smm=on without it
// ("System Management Mode not supported by this hypervisor").
func kvmHasSMM() (bool, error) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	const kvmCheckExtension = 0xAE03 // _IO(KVMIO, 0x03)
	const kvmCapX86SMM = 117
	r, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCheckExtension, kvmCapX86SMM)
	if e != 0 {
		return false, e
	}
	return r > 0, nil
}
