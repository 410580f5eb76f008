package web

import (
	"html/template"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/status"
)

// maxEvents bounds the events table: the page is for a glance, and a node
// that logs thousands of events should still render in milliseconds.
const maxEvents = 200

// view is everything the template reads, computed in Go so the template
// stays a layout.
type view struct {
	Node, Version string
	Refresh       int
	Generated     stamp

	Source    status.Source
	LastFetch *stamp
	Reconcile status.Reconcile
	LastRun   *stamp

	Suspended        bool
	SuspendedObjects []string
	Drifted          int
	Differences      []status.Step
	Holds            []status.Step
	Host             status.Host

	VMs         []vmRow
	DataVolumes []dvRow
	// Uploads are the DataVolumes that take an upload now; with any, the
	// page has the upload form and its Script.
	Uploads []dvRow
	Script  template.JS
	Claims  []claimRow
	Volumes []volumeRow

	Desc      nodedesc.Description
	DescError string
	Resources []resourceRow

	Events      []eventRow
	EventsTotal int
}

// stamp is a time as RFC 3339 (for machines and the datetime attribute)
// and as an age relative to the page (for people).
type stamp struct{ RFC3339, Age string }

type vmRow struct {
	Key, Name, Namespace string
	State, StateClass    string
	Ready, Suspended     bool
	Drift                []status.Step
	Requests             []string
}

type dvRow struct {
	Key, Name, Namespace string
	Phase, PhaseClass    string
	Progress             string
	Percent              float64
	HasPercent           bool
}

type claimRow struct {
	Key, Name, Namespace string
	Phase, PhaseClass    string
	Capacity, Requested  string
	Volume, StorageClass string
}

type volumeRow struct {
	Name              string
	Phase, PhaseClass string
	Capacity, Claim   string
	StorageClass      string
	Path              string
}

type resourceRow struct{ Name, Capacity, Allocatable string }

type eventRow struct {
	At                            stamp
	Type, Reason, Object, Message string
	Warning                       bool
}

func build(opts Options, st status.Node, events []status.Event, desc nodedesc.Description, derr error, now time.Time) view {
	v := view{
		Node: opts.Node, Version: opts.Version, Refresh: opts.RefreshSeconds,
		Generated: stampOf(now, now),
		Source:    st.Source, Reconcile: st.Reconcile,
		Suspended: st.Suspension.Global, SuspendedObjects: st.Suspension.Objects,
		Drifted: st.Drifted, Differences: st.Differences, Holds: st.Holds, Host: st.Host,
		Desc: desc,
	}
	if v.Node == "" {
		v.Node = desc.Name
	}
	if t := st.Source.LastFetch; t != nil {
		s := stampOf(*t, now)
		v.LastFetch = &s
	}
	if t := st.Reconcile.Last; t != nil {
		s := stampOf(*t, now)
		v.LastRun = &s
	}
	if derr != nil {
		v.DescError = derr.Error()
	}
	v.VMs = vmRows(st, v.Suspended)
	v.DataVolumes = dvRows(st)
	v.Uploads = uploadRows(st, v.DataVolumes)
	if len(v.Uploads) > 0 {
		v.Script = template.JS(uploadScript)
	}
	v.Claims = claimRows(st.PersistentVolumeClaims)
	v.Volumes = volumeRows(st.PersistentVolumes)
	v.Resources = resourceRows(desc)
	v.Events, v.EventsTotal = eventRows(events, now), len(events)
	return v
}

// objectRef is how plan steps and suspensions name an object
// (manifests.Ref's "Kind namespace/name").
func objectRef(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

func vmRows(st status.Node, global bool) []vmRow {
	steps := map[string][]status.Step{}
	for _, s := range st.Differences {
		steps[s.Object] = append(steps[s.Object], s)
	}
	suspended := map[string]bool{}
	for _, o := range st.Suspension.Objects {
		suspended[o] = true
	}
	rows := make([]vmRow, 0, len(st.VirtualMachines))
	for i := range st.VirtualMachines {
		vm := &st.VirtualMachines[i]
		ref := objectRef("VirtualMachine", vm.Namespace, vm.Name)
		r := vmRow{
			Key: vm.Namespace + "/" + vm.Name, Name: vm.Name, Namespace: vm.Namespace,
			State: string(vm.Status.PrintableStatus), Ready: vm.Status.Ready,
			Suspended: global || suspended[ref], Drift: steps[ref],
		}
		if r.State == "" {
			r.State = string(kubevirtv1.VirtualMachineStatusUnknown)
		}
		r.StateClass = vmStateClass(vm.Status.PrintableStatus)
		for _, req := range vm.Status.StateChangeRequests {
			r.Requests = append(r.Requests, string(req.Action))
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// vmStateClass sorts KubeVirt's printable statuses into the page's four
// colours: running, stopped, on the way, and in trouble.
func vmStateClass(s kubevirtv1.VirtualMachinePrintableStatus) string {
	switch s {
	case kubevirtv1.VirtualMachineStatusRunning:
		return "ok"
	case kubevirtv1.VirtualMachineStatusStopped, kubevirtv1.VirtualMachineStatusPaused:
		return "idle"
	case kubevirtv1.VirtualMachineStatusProvisioning, kubevirtv1.VirtualMachineStatusStarting,
		kubevirtv1.VirtualMachineStatusStopping, kubevirtv1.VirtualMachineStatusTerminating,
		kubevirtv1.VirtualMachineStatusMigrating, kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding,
		kubevirtv1.VirtualMachineStatusWaitingForReceiver:
		return "busy"
	}
	return "bad"
}

func dvRows(st status.Node) []dvRow {
	rows := make([]dvRow, 0, len(st.DataVolumes))
	for i := range st.DataVolumes {
		dv := &st.DataVolumes[i]
		r := dvRow{
			Key: dv.Namespace + "/" + dv.Name, Name: dv.Name, Namespace: dv.Namespace,
			Phase: string(dv.Status.Phase), Progress: string(dv.Status.Progress),
		}
		switch r.Phase {
		case "Succeeded":
			r.PhaseClass = "ok"
		case "Failed":
			r.PhaseClass = "bad"
		case "":
			r.Phase, r.PhaseClass = "Unknown", "idle"
		default:
			r.PhaseClass = "busy"
		}
		// CDI's progress is "45.00%", or "N/A" when it is not known.
		if p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(r.Progress), "%"), 64); err == nil && strings.HasSuffix(r.Progress, "%") {
			r.Percent, r.HasPercent = min(max(p, 0), 100), true
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// annUploadPodReady is CDI's claim annotation: the claim's upload server
// takes data (an upload DataVolume UploadReady, or Failed and so ready for
// another try).
const annUploadPodReady = "cdi.kubevirt.io/storage.pod.ready"

// uploadRows are the DataVolumes that take an upload now: their claims
// say so as CDI's do, or their spec is an upload's and they are ready.
func uploadRows(st status.Node, rows []dvRow) []dvRow {
	takes := map[string]bool{}
	for _, c := range st.PersistentVolumeClaims {
		if c.Annotations[annUploadPodReady] == "true" {
			takes[c.Namespace+"/"+c.Name] = true
		}
	}
	for _, dv := range st.DataVolumes {
		if dv.Spec.Source != nil && dv.Spec.Source.Upload != nil &&
			(dv.Status.Phase == cdiv1.UploadReady || dv.Status.Phase == cdiv1.Failed) {
			takes[dv.Namespace+"/"+dv.Name] = true
		}
	}
	var out []dvRow
	for _, r := range rows {
		if takes[r.Key] {
			out = append(out, r)
		}
	}
	return out
}

func claimRows(pvcs []corev1.PersistentVolumeClaim) []claimRow {
	rows := make([]claimRow, 0, len(pvcs))
	for i := range pvcs {
		c := &pvcs[i]
		r := claimRow{
			Key: c.Namespace + "/" + c.Name, Name: c.Name, Namespace: c.Namespace,
			Phase: string(c.Status.Phase), PhaseClass: phaseClass(string(c.Status.Phase)),
			Volume: c.Spec.VolumeName,
		}
		if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
			r.Capacity = q.String()
		}
		if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			r.Requested = q.String()
		}
		if c.Spec.StorageClassName != nil {
			r.StorageClass = *c.Spec.StorageClassName
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

func volumeRows(pvs []corev1.PersistentVolume) []volumeRow {
	rows := make([]volumeRow, 0, len(pvs))
	for i := range pvs {
		pv := &pvs[i]
		r := volumeRow{
			Name: pv.Name, Phase: string(pv.Status.Phase), PhaseClass: phaseClass(string(pv.Status.Phase)),
			StorageClass: pv.Spec.StorageClassName,
		}
		if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; ok {
			r.Capacity = q.String()
		}
		if c := pv.Spec.ClaimRef; c != nil {
			r.Claim = c.Namespace + "/" + c.Name
		}
		switch {
		case pv.Spec.Local != nil:
			r.Path = pv.Spec.Local.Path
		case pv.Spec.HostPath != nil:
			r.Path = pv.Spec.HostPath.Path
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

// phaseClass colours claim and volume phases.
func phaseClass(phase string) string {
	switch phase {
	case "Bound":
		return "ok"
	case "Available", "Released":
		return "idle"
	case "Pending":
		return "busy"
	}
	return "bad"
}

func resourceRows(d nodedesc.Description) []resourceRow {
	names := make([]string, 0, len(d.Capacity))
	for n := range d.Capacity {
		names = append(names, n)
	}
	for n := range d.Allocatable {
		if _, ok := d.Capacity[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	rows := make([]resourceRow, 0, len(names))
	for _, n := range names {
		rows = append(rows, resourceRow{Name: n, Capacity: d.Capacity[n], Allocatable: d.Allocatable[n]})
	}
	return rows
}

func eventRows(events []status.Event, now time.Time) []eventRow {
	sorted := make([]status.Event, len(events))
	copy(sorted, events)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.After(sorted[j].Time) })
	if len(sorted) > maxEvents {
		sorted = sorted[:maxEvents]
	}
	rows := make([]eventRow, 0, len(sorted))
	for _, e := range sorted {
		rows = append(rows, eventRow{
			At: stampOf(e.Time, now), Type: e.Type, Reason: e.Reason, Object: e.Object, Message: e.Message,
			Warning: e.Type == status.Warning,
		})
	}
	return rows
}

func stampOf(t, now time.Time) stamp {
	return stamp{RFC3339: t.UTC().Format(time.RFC3339), Age: age(now.Sub(t))}
}

// age is a duration as people read it on a status page: one or two units,
// "ago" for the past.
func age(d time.Duration) string {
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, " from now"
	}
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s" + suffix
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m" + suffix
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		return strconv.Itoa(h) + "h" + strconv.Itoa(m) + "m" + suffix
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d" + suffix
}
