package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
)

func (n *node) AddVolume(_ context.Context, ns, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (status.ActionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	src := ""
	if s := opts.VolumeSource; s != nil && s.DataVolume != nil {
		src = s.DataVolume.Name
	}
	n.calls = append(n.calls, fmt.Sprintf("addvolume %s/%s %s<-%s persist=%v", ns, name, opts.Name, src, persist))
	if name == "stopped" {
		return status.ActionResult{}, api.Conflict(errors.New("VirtualMachine default/stopped: VM is not running"))
	}
	if opts.Name == "" {
		return status.ActionResult{}, api.Invalid(errors.New("a volume name is required"))
	}
	res := status.ActionResult{Changed: true, Action: "addvolume", Object: "VirtualMachine " + ns + "/" + name}
	if persist {
		res.Patch = "spec: {}\n"
	}
	return res, nil
}

func (n *node) RemoveVolume(_ context.Context, ns, name string, opts kubevirtv1.RemoveVolumeOptions, persist bool) (status.ActionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf("removevolume %s/%s %s persist=%v", ns, name, opts.Name, persist))
	if opts.Name == "nope" {
		return status.ActionResult{}, api.Invalid(errors.New("Unable to remove volume [nope] because it does not exist"))
	}
	return status.ActionResult{Changed: true, Action: "removevolume"}, nil
}

// The VirtualMachine routes persist and the VirtualMachineInstance routes
// do not, as KubeVirt's; the body is KubeVirt's options; errors keep their
// status codes; the socket needs no token, TCP does.
func TestVolumes_routes(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	body := `{"name":"data","disk":{"name":"data","serial":"S1","disk":{"bus":"scsi"}},"volumeSource":{"dataVolume":{"name":"dv1","hotpluggable":true}}}`
	code, _, out := w.do(w.client, http.MethodPut, api.Prefix+"/namespaces/lab/virtualmachines/vm/addvolume", tok, body)
	if code != http.StatusOK || !strings.Contains(out, `"patch"`) {
		t.Fatalf("addvolume on the VM: %d %s", code, out)
	}
	if code, _, _ := w.do(w.client, http.MethodPut, api.Prefix+"/namespaces/lab/virtualmachines/vm/addvolume", "", body); code != http.StatusUnauthorized {
		t.Fatalf("addvolume without a token: %d", code)
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/namespaces/lab/virtualmachines/stopped/addvolume", body, http.StatusConflict},
		{"/namespaces/lab/virtualmachineinstances/vm/addvolume", body, http.StatusOK},
		{"/namespaces/lab/virtualmachineinstances/vm/removevolume", `{"name":"data"}`, http.StatusOK},
		{"/namespaces/lab/virtualmachineinstances/vm/removevolume", body, http.StatusBadRequest},
	} {
		if code, _, out := w.do(w.client, http.MethodPut, api.Prefix+tc.path, tok, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.path, code, out, tc.want)
		}
	}
	if code, _, out := w.do(w.client, http.MethodPut, api.Prefix+"/namespaces/lab/virtualmachines/vm/addvolume", tok, `{"name":"x","bogus":1}`); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", code, out)
	}

	c, err := api.Local(t.Context(), w.socket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveVolume(t.Context(), "lab", "vm", kubevirtv1.RemoveVolumeOptions{Name: "data"}, true); err != nil {
		t.Fatalf("removevolume over the socket: %v", err)
	}
	_, err = c.RemoveVolume(t.Context(), "lab", "vm", kubevirtv1.RemoveVolumeOptions{Name: "nope"}, false)
	var apiErr *api.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusBadRequest || !strings.Contains(apiErr.Message, "does not exist") {
		t.Fatalf("removevolume of a missing volume: %v", err)
	}
	want := []string{
		"addvolume lab/vm data<-dv1 persist=true",
		"addvolume lab/stopped data<-dv1 persist=true",
		"addvolume lab/vm data<-dv1 persist=false",
		"removevolume lab/vm data persist=false",
		"removevolume lab/vm data persist=true",
		"removevolume lab/vm nope persist=false",
	}
	got := w.node.called()
	for _, c := range want {
		found := false
		for _, g := range got {
			found = found || g == c
		}
		if !found {
			t.Errorf("call %q missing from %q", c, got)
		}
	}
}
