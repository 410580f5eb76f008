package virt

import (
	"errors"
	"testing"
	"time"
)

func TestDriver_AttachDevice_notRunning(t *testing.T) {
	// The test driver has no device hotplug (libvirt 9.0): only the checks
	// before the call are testable here; hotplug_e2e_test.go runs the rest.
	d := openTest(t)
	if err := d.Define(t.Context(), testDomain("off", "6f1b7a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5c", "")); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachDevice(t.Context(), "off", `<disk type="file" device="disk"><source file="/x"/><target dev="sdb" bus="scsi"/></disk>`, false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("attach to a stopped domain: want ErrNotRunning, got %v", err)
	}
	if err := d.DetachDevice(t.Context(), "off", "ua-data", false, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("detach from a stopped domain: want ErrNotRunning, got %v", err)
	}
	if err := d.AttachDevice(t.Context(), "nope", `<disk type="file" device="disk"><source file="/x"/><target dev="sdb" bus="scsi"/></disk>`, false); !errors.Is(err, ErrNotDefined) {
		t.Fatalf("attach to an unknown domain: want ErrNotDefined, got %v", err)
	}
}
