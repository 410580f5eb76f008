//go:build e2e

package e2e

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The guest has no tpm2-tools: it speaks TPM 2.0 to /dev/tpm0 itself,
// writing a command with one write(2) (busybox printf) and reading the
// response with one read(2) (dd), as the kernel's character device wants.
// Every command authorizes with the owner hierarchy's empty password
// (session TPM_RS_PW), which a fresh swtpm has.
var (
	// pwSession is authorizationSize 9 + TPMS_AUTH_COMMAND: TPM_RS_PW, no
	// nonce, no attributes, empty password.
	pwSession = []byte{0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0}
	owner     = []byte{0x40, 0, 0, 1}
	nvIndex   = []byte{0x01, 0x50, 0, 1}

	// TPM2_NV_DefineSpace: an 8-byte ordinary index the owner reads and
	// writes (TPMA_NV_OWNERWRITE|OWNERREAD), name algorithm SHA-256.
	tpmDefine = tpmCommand(0x12a, owner, pwSession,
		[]byte{0, 0}, // auth: empty
		[]byte{0, 14}, nvIndex, []byte{0, 0x0b, 0, 0x02, 0, 0x02, 0, 0, 0, 8})
	// TPM2_NV_Read of all 8 bytes at offset 0.
	tpmRead = tpmCommand(0x14e, owner, nvIndex, pwSession, []byte{0, 8, 0, 0})
)

// tpmCommand frames a TPM 2.0 command with sessions (TPM_ST_SESSIONS).
func tpmCommand(code uint32, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	size := uint32(10 + len(body))
	return append([]byte{0x80, 0x02, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size),
		byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)}, body...)
}

// printfEscape spells b for printf's format: octal escapes throughout.
func printfEscape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, `\%03o`, c)
	}
	return s.String()
}

// tpmInit is the guest's /init: it reports its TPM (driver, version), then
// reads the NV index; when that fails (a new TPM) it defines the index and
// writes the first 8 characters of its boot ID into it. It prints the raw
// responses in hex again and again (the console may attach late).
func tpmInit() string {
	// TPM2_NV_Write of 8 bytes at offset 0; the data comes in between.
	write := tpmCommand(0x137, owner, nvIndex, pwSession, []byte{0, 8}, []byte("XXXXXXXX"), []byte{0, 0})
	at := strings.Index(string(write), "XXXXXXXX")
	return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
tpm() {
  exec 3<>/dev/tpm0
  printf "$1" >&3
  dd bs=4096 count=1 <&3 2>/dev/null | hexdump -v -e '/1 "%02x"'
  exec 3>&-
}
if [ -c /dev/tpm0 ]; then
  drv=$(basename "$(readlink /sys/class/tpm/tpm0/device/driver)")
  msg1="nodevirt-guest: tpm /dev/tpm0 driver $drv version $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
  r=$(tpm '` + printfEscape(tpmRead) + `')
  msg2="nodevirt-guest: tpm nvread $r"
  case "$r" in
    8002????????00000000*) msg3="nodevirt-guest: tpm kept" ;;
    *)
      v=$(cut -c1-8 /proc/sys/kernel/random/boot_id)
      d=$(tpm '` + printfEscape(tpmDefine) + `')
      w=$(tpm '` + printfEscape(write[:at]) + `'"$v"'` + printfEscape(write[at+8:]) + `')
      msg3="nodevirt-guest: tpm nvwrite $v define $d write $w"
      ;;
  esac
else
  msg1="nodevirt-guest: tpm FAILED: no /dev/tpm0"
fi
while true; do
  for m in "$msg1" "$msg2" "$msg3"; do echo "$m" > /dev/console; done
  sleep 1
done
`
}

// tpmVM is a VM that boots tpmInit with the TPM tpm.
func tpmVM(ns, name, tpm, runStrategy string) string {
	return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  runStrategy: ` + runStrategy + `
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
` + fidelityCPU + `        memory: {guest: 256Mi}
        devices:
          tpm: ` + tpm + `
        firmware:
          kernelBoot:
            container: {image: "oci:` + hostImageDir + `/kernel", kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd}
            kernelArgs: console=ttyS0 quiet
`
}

var (
	tpmWroteRE = regexp.MustCompile(`nodevirt-guest: tpm nvwrite ([0-9a-f]{8}) define ([0-9a-f]+) write ([0-9a-f]+)`)
	tpmReadRE  = regexp.MustCompile(`nodevirt-guest: tpm nvread ([0-9a-f]*)`)
)

// tpmBoot is what one boot of the guest reported.
type tpmBoot struct {
	driver string
	// wrote is the value written into a new TPM; read the one found.
	wrote, read string
}

func awaitTPMBoot(t *testing.T, con *serialConsole) tpmBoot {
	t.Helper()
	con.await(t, "nodevirt-guest: tpm ", 3, 120*time.Second)
	out := stripTerminal(con.text())
	if strings.Contains(out, "tpm FAILED") {
		t.Fatalf("the guest found no TPM:\n%s", lastChars(out, 3000))
	}
	var b tpmBoot
	if m := regexp.MustCompile(`tpm /dev/tpm0 driver (\S+) version 2`).FindStringSubmatch(out); m != nil {
		b.driver = m[1]
	} else {
		t.Fatalf("the guest's TPM is not a TPM 2.0 with a driver:\n%s", lastChars(out, 3000))
	}
	rd := tpmReadRE.FindStringSubmatch(out)
	if rd == nil {
		t.Fatalf("no NV read reported:\n%s", lastChars(out, 3000))
	}
	if m := tpmWroteRE.FindStringSubmatch(out); m != nil {
		for i, rc := range []string{m[2], m[3]} {
			if len(rc) < 20 || rc[12:20] != "00000000" {
				t.Fatalf("TPM command %d failed in the guest: response %s", i+1, rc)
			}
		}
		b.wrote = m[1]
		return b
	}
	// NV_Read response: header (10 bytes), parameterSize (4), TPM2B size
	// 0008 and the 8 bytes.
	r := rd[1]
	if len(r) < 48 || r[12:20] != "00000000" || r[28:32] != "0008" {
		t.Fatalf("unexpected NV_Read response %s", r)
	}
	data, err := hex.DecodeString(r[32:48])
	if err != nil {
		t.Fatal(err)
	}
	b.read = string(data)
	return b
}

// vTPM through libvirt's swtpm: the guest finds /dev/tpm0 (CRB for a
// persistent TPM, TIS otherwise, as KubeVirt), what it writes into a
// persistent TPM's NV storage is there after the VM is destroyed and
// started again, a non-persistent TPM starts empty each time as in a new
// virt-launcher pod, and deleting the VM removes its TPM state.
func TestFidelity_TPM(t *testing.T) {
	w := newWorld(t)
	g := w.guestVirt()
	g.log(t)
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), tpmInit())
	vm := func(name, tpm string) string { return tpmVM(w.ns, name, tpm, "Always") }
	w.commit("TPM VMs", map[string]string{
		"vms/keep.yaml":  vm("keep", "{persistent: true}"),
		"vms/fresh.yaml": vm("fresh", "{}"),
	})
	uuid := map[string]string{}
	t.Cleanup(func() {
		// A persistent TPM's state outlives a plain undefine (the world's
		// clean-up): remove it with the domain when the test stops early.
		for name, id := range uuid {
			_, _ = virshOK("destroy", w.dom(name))
			_, _ = virshOK("undefine", "--nvram", "--tpm", w.dom(name))
			_ = os.RemoveAll(filepath.Join("/var/lib/libvirt/swtpm", id))
		}
	})
	boot := func(round int) map[string]tpmBoot {
		t.Helper()
		w.mustNodevirt("apply")
		got := map[string]tpmBoot{}
		for _, name := range []string{"keep", "fresh"} {
			w.awaitState(name, "running", 60*time.Second)
			uuid[name] = strings.TrimSpace(virsh(t, "domuuid", w.dom(name)))
			con := attachConsole(t, w.dom(name))
			got[name] = awaitTPMBoot(t, con)
			t.Logf("boot %d of %s: %+v", round, name, got[name])
		}
		return got
	}

	first := boot(1)
	if d := first["keep"].driver; d != "tpm_crb" {
		t.Errorf("persistent TPM: guest driver %q, want tpm_crb", d)
	}
	if d := first["fresh"].driver; d != "tpm_tis" {
		t.Errorf("TPM: guest driver %q, want tpm_tis", d)
	}
	for name, b := range first {
		if b.wrote == "" {
			t.Fatalf("%s: a new TPM already held data: %+v", name, b)
		}
	}
	state := filepath.Join("/var/lib/libvirt/swtpm", uuid["keep"], "tpm2", "tpm2-00.permall")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("swtpm state of the persistent TPM: %v", err)
	}

	for _, name := range []string{"keep", "fresh"} {
		virsh(t, "destroy", w.dom(name))
	}
	second := boot(2)
	if got, want := second["keep"].read, first["keep"].wrote; got != want {
		t.Errorf("persistent TPM after a restart: read %q, want %q written before it", got, want)
	}
	if b := second["fresh"]; b.wrote == "" {
		t.Errorf("non-persistent TPM after a restart still held %q; KubeVirt starts it empty", b.read)
	}

	w.commit("remove keep", map[string]string{"vms/keep.yaml": ""})
	w.mustNodevirt("apply")
	if s := domState(w.dom("keep")); s != "absent" {
		t.Fatalf("deleted VM's domain is %s", s)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(state))); !os.IsNotExist(err) {
		t.Errorf("the deleted VM's TPM state is still there: %v", err)
	}
}

// An offline snapshot carries a persistent TPM's state: after the TPM lost
// what the guest wrote (its state removed on the host, so the next boot
// writes new data into a new TPM), restoring the snapshot brings the
// first boot's data back to the guest.
func TestFidelity_TPMSnapshotRestore(t *testing.T) {
	w := newWorld(t)
	g := w.guestVirt()
	g.log(t)
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), tpmInit())
	const tpm = "{persistent: true}"
	w.commit("a VM with a persistent TPM", map[string]string{"vms/keep.yaml": tpmVM(w.ns, "keep", tpm, "Always")})
	a := w.startAgent()
	dom := w.dom("keep")
	w.awaitState("keep", "running", 90*time.Second)
	uuid := strings.TrimSpace(virsh(t, "domuuid", dom))
	stateDir := filepath.Join("/var/lib/libvirt/swtpm", uuid)
	t.Cleanup(func() {
		_, _ = virshOK("destroy", dom)
		_, _ = virshOK("undefine", "--nvram", "--tpm", dom)
		_ = os.RemoveAll(stateDir)
	})
	run := func(round int) tpmBoot {
		t.Helper()
		if round > 1 {
			w.commit("run", map[string]string{"vms/keep.yaml": tpmVM(w.ns, "keep", tpm, "Always")})
			w.awaitState("keep", "running", 90*time.Second)
		}
		b := awaitTPMBoot(t, attachConsole(t, dom))
		t.Logf("boot %d: %+v", round, b)
		w.commit("halt", map[string]string{"vms/keep.yaml": tpmVM(w.ns, "keep", tpm, "Halted")})
		w.awaitState("keep", "shut off", 60*time.Second)
		return b
	}

	first := run(1)
	if first.wrote == "" {
		t.Fatalf("a new TPM already held data: %+v", first)
	}
	w.commit("snapshot", map[string]string{"snap.yaml": snapshotYAML(w.ns, "s1", "keep")})
	await(t, "the snapshot ready to use", 2*time.Minute, func() bool {
		s, ok := w.getSnapshot("s1")
		return ok && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	})
	if _, err := os.Stat(filepath.Join(w.state, "snapshots", w.ns, "s1", "tpm", "tpm2", "tpm2-00.permall")); err != nil {
		t.Fatalf("the snapshot's content lacks the TPM state: %v\n%s", err, a.logs())
	}

	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	if second := run(2); second.wrote == "" || second.wrote == first.wrote {
		t.Fatalf("after its state was removed the TPM must be new: %+v", second)
	}

	w.commit("restore", map[string]string{"restore.yaml": fmt.Sprintf(`apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineRestore
metadata: {name: back, namespace: %s}
spec:
  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: keep}
  virtualMachineSnapshotName: s1
`, w.ns)})
	await(t, "the restore complete", 2*time.Minute, func() bool {
		out, _, err := w.nodevirt("get", "vmrestore", "back", "-o", "json")
		return err == nil && strings.Contains(out, `"complete": true`)
	})
	if third := run(3); third.read != first.wrote {
		t.Errorf("after the restore the guest read %+v, want the first boot's %q", third, first.wrote)
	}
}
