package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Under a Type=notify unit with WatchdogSec, `run` says READY=1 once its
// first iteration ended, WATCHDOG=1 while it runs, and STOPPING=1 when the
// stop arrives; then it returns cleanly.
func TestRun_notifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "vm.yaml"), `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices: {}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"run", "--source", src, "--state", filepath.Join(dir, "state"), "--root", filepath.Join(dir, "root"),
		"--libvirt", "test:///default", "--node", "n1", "--log-level", "error", "--interval", "1h", "--listen", "127.0.0.1:0"})
	cmd.SetOut(os.Stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	got := map[string]int{}
	var order []string
	read := func(until string) {
		t.Helper()
		buf := make([]byte, 256)
		deadline := time.Now().Add(60 * time.Second)
		for got[until] == 0 {
			if err := conn.SetReadDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s (got %v): %v", until, order, err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
				got[l]++
				order = append(order, l)
			}
		}
	}
	read("READY=1")
	read("WATCHDOG=1")
	cancel()
	read("STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after the stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return after the stop")
	}
}
