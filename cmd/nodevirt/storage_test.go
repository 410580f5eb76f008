package main

import (
	"strings"
	"testing"
)

// storage describe shows the seed's feature matrix per class, the volumes
// and every claim with its phase; nothing on the host changes.
func TestStorageDescribe_examples(t *testing.T) {
	out, errOut, code := run(t, "--node", "node01", "storage", "describe", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"hostpath-provisioner (default)  kubevirt.io/hostpath-provisioner  Delete   WaitForFirstConsumer  OpenShift Virtualization hostpath provisioner  no",
		"local-block-pv10",
		"default/fedora                  DataVolume  WaitForFirstConsumer",
		"default/blank-image-datavolume  DataVolume  ImportScheduled",
		"10836Mi",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
}

// storage plan -o json carries the actions; on another node the loop PV,
// pinned to node01, is not there.
func TestStoragePlan_json(t *testing.T) {
	out, errOut, code := run(t, "--node", "node02", "-o", "json", "storage", "plan", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "local-block-pv10") || !strings.Contains(out, `"action": "bind"`) {
		t.Fatalf("plan:\n%s", out)
	}
}
