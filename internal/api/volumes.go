package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/status"
)

// Volumes is an Agent that hot-plugs volumes (virtctl addvolume and
// removevolume). As in KubeVirt, the VirtualMachine routes persist the
// change and the VirtualMachineInstance routes change the running instance
// only.
type Volumes interface {
	AddVolume(ctx context.Context, namespace, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (status.ActionResult, error)
	RemoveVolume(ctx context.Context, namespace, name string, opts kubevirtv1.RemoveVolumeOptions, persist bool) (status.ActionResult, error)
}

func (s *Server) volumeRoutes() {
	for _, kind := range []string{"virtualmachines", "virtualmachineinstances"} {
		persist := kind == "virtualmachines"
		base := Prefix + "/namespaces/{namespace}/" + kind + "/{name}/"
		s.mux.Handle(base+"addvolume", only(s.addVolume(persist), http.MethodPut))
		s.mux.Handle(base+"removevolume", only(s.removeVolume(persist), http.MethodPut))
	}
}

func (s *Server) volumes(w http.ResponseWriter) (Volumes, bool) {
	v, ok := s.o.Agent.(Volumes)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this agent does not hot-plug volumes")
	}
	return v, ok
}

func (s *Server) addVolume(persist bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.volumes(w)
		if !ok {
			return
		}
		opts, err := readBody[kubevirtv1.AddVolumeOptions](w, r)
		if err != nil {
			return
		}
		res, err := v.AddVolume(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts, persist)
		s.answer(w, r, res, err)
	}
}

func (s *Server) removeVolume(persist bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.volumes(w)
		if !ok {
			return
		}
		opts, err := readBody[kubevirtv1.RemoveVolumeOptions](w, r)
		if err != nil {
			return
		}
		res, err := v.RemoveVolume(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts, persist)
		s.answer(w, r, res, err)
	}
}

// AddVolume hot-plugs a volume into a running VM; persist asks for the
// spec change to commit (Patch) and keeps the volume until it lands.
func (c *Client) AddVolume(ctx context.Context, namespace, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (status.ActionResult, error) {
	var res status.ActionResult
	return res, c.do(ctx, http.MethodPut, volumePath(namespace, name, "addvolume", persist), opts, &res)
}

// RemoveVolume detaches a volume from a running VM.
func (c *Client) RemoveVolume(ctx context.Context, namespace, name string, opts kubevirtv1.RemoveVolumeOptions, persist bool) (status.ActionResult, error) {
	var res status.ActionResult
	return res, c.do(ctx, http.MethodPut, volumePath(namespace, name, "removevolume", persist), opts, &res)
}

func volumePath(namespace, name, action string, persist bool) string {
	kind := "virtualmachineinstances"
	if persist {
		kind = "virtualmachines"
	}
	return fmt.Sprintf("%s/namespaces/%s/%s/%s/%s", Prefix, url.PathEscape(namespace), kind, url.PathEscape(name), action)
}
