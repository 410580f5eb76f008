package fleet

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/status"
)

func TestFromStatus_vmsVolumesAndNoCredentials(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "default", Name: name} }
	st := status.Node{
		Source: status.Source{URL: "https://user:s3cret@git.example/fleet.git", Revision: "main@sha1:bbbb",
			LastAppliedRevision: "main@sha1:aaaa", FetchError: "fetch https://user:s3cret@git.example/fleet.git: timeout"},
		Differences: []status.Step{{Stage: "vm", Action: "Restart", Object: "VirtualMachine default/web", Reason: "memory changed"}},
		Holds:       []status.Step{{Action: "Delete", Object: "VirtualMachine default/old"}},
		VirtualMachines: []kubevirtv1.VirtualMachine{
			{ObjectMeta: meta("web"), Status: kubevirtv1.VirtualMachineStatus{PrintableStatus: kubevirtv1.VirtualMachineStatusRunning}},
			{ObjectMeta: meta("db"), Status: kubevirtv1.VirtualMachineStatus{PrintableStatus: kubevirtv1.VirtualMachineStatusStopped}},
		},
		VirtualMachineInstances: []kubevirtv1.VirtualMachineInstance{
			{ObjectMeta: meta("web"), Status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running}},
		},
		DataVolumes:            []cdiv1.DataVolume{{ObjectMeta: meta("web-root"), Status: cdiv1.DataVolumeStatus{Phase: cdiv1.Succeeded}}},
		PersistentVolumeClaims: []corev1.PersistentVolumeClaim{{ObjectMeta: meta("web-root"), Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}},
	}
	now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	r := FromStatus("n1", st, Capacity{Arch: "amd64"}, now)
	if r.APIVersion != APIVersion || r.Kind != Kind || r.Node != "n1" || !r.Time.Equal(now) {
		t.Errorf("header = %s %s %s %s", r.APIVersion, r.Kind, r.Node, r.Time)
	}
	if r.Revisions.Applied != "main@sha1:aaaa" || r.Revisions.Fetched != "main@sha1:bbbb" {
		t.Errorf("revisions = %+v", r.Revisions)
	}
	want := []VM{
		{Namespace: "default", Name: "db", State: "Stopped"},
		{Namespace: "default", Name: "web", State: "Running", Running: true, Drift: []string{"Restart: memory changed"}},
	}
	if len(r.VMs) != 2 || r.VMs[0].Name != "db" || r.VMs[0].Running || r.VMs[1].Name != "web" || !r.VMs[1].Running ||
		strings.Join(r.VMs[1].Drift, "|") != want[1].Drift[0] || len(r.VMs[0].Drift) != 0 {
		t.Errorf("VMs = %+v, want %+v", r.VMs, want)
	}
	if len(r.Volumes) != 2 || r.Volumes[0].Kind != "DataVolume" || r.Volumes[0].Phase != "Succeeded" || r.Volumes[1].Phase != "Bound" || r.Volumes[1].Node != "n1" {
		t.Errorf("Volumes = %+v", r.Volumes)
	}
	if len(r.Holds) != 1 || r.Holds[0] != "Delete VirtualMachine default/old" {
		t.Errorf("Holds = %v", r.Holds)
	}
	data, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cret") || strings.Contains(string(data), "user:") {
		t.Errorf("report leaks credentials:\n%s", data)
	}
	if !strings.Contains(string(data), "https://git.example/fleet.git: timeout") {
		t.Errorf("fetch error lost its text:\n%s", data)
	}
	back, err := Decode(data, "n1")
	if err != nil || !Equal(back, r) {
		t.Errorf("Decode(Marshal(r)) = %+v, %v", back, err)
	}
}

func TestDecode_strict(t *testing.T) {
	good, err := Marshal(Report{APIVersion: APIVersion, Kind: Kind, Node: "n1", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data, node, want string
	}{
		"unknown field": {`{"apiVersion":"nodevirt.io/v1alpha1","kind":"NodeReport","node":"n1","time":"2026-01-01T00:00:00Z","x":1}`, "n1", `unknown field "x"`},
		"wrong kind":    {`{"apiVersion":"v1","kind":"Node","node":"n1","time":"2026-01-01T00:00:00Z"}`, "n1", `kind "Node"`},
		"wrong node":    {string(good), "n2", `node "n1" does not match`},
		"no time":       {`{"apiVersion":"nodevirt.io/v1alpha1","kind":"NodeReport","node":"n1"}`, "n1", "time is missing"},
		"two values":    {string(good) + string(good), "n1", "more than one"},
	} {
		if _, err := Decode([]byte(tc.data), tc.node); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, want an error with %q", name, err, tc.want)
		}
	}
	if _, err := Decode(good, "n1"); err != nil {
		t.Errorf("good report: %v", err)
	}
}
