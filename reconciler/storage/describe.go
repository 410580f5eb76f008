package storage

import (
	"maps"
	"slices"
	"strings"
)

// Description is what `nodevirt storage describe` shows: every class with
// its row of the seed's feature matrix, every volume and every claim with
// its phase and progress.
type Description struct {
	Classes []ClassView  `json:"storageClasses"`
	Volumes []VolumeView `json:"persistentVolumes"`
	Claims  []ClaimView  `json:"claims"`
	// Settings are the CDI settings in force.
	Settings Settings  `json:"settings"`
	HostPath *HostPath `json:"hostPathProvisioner,omitempty"`
}

// ClassView is one StorageClass.
type ClassView struct {
	Name          string   `json:"name"`
	Provisioner   string   `json:"provisioner"`
	ReclaimPolicy string   `json:"reclaimPolicy"`
	BindingMode   string   `json:"volumeBindingMode"`
	Default       bool     `json:"default,omitempty"`
	Features      Features `json:"features"`
	// Used: volumes were provisioned from it, so it is immutable.
	Used bool `json:"used,omitempty"`
}

// VolumeView is one PersistentVolume, declared or provisioned.
type VolumeView struct {
	Name          string `json:"name"`
	Object        string `json:"object,omitempty"`
	Capacity      int64  `json:"capacity"`
	VolumeMode    string `json:"volumeMode"`
	Class         string `json:"storageClassName,omitempty"`
	ReclaimPolicy string `json:"reclaimPolicy"`
	Phase         string `json:"phase"`
	Claim         string `json:"claim,omitempty"`
	// Path is the directory or the backing file; Device the loop device.
	Path    string `json:"path,omitempty"`
	Device  string `json:"device,omitempty"`
	Dynamic bool   `json:"dynamic,omitempty"`
}

// ClaimView is one claim or DataVolume.
type ClaimView struct {
	Key      string      `json:"claim"`
	Object   string      `json:"object"`
	Owner    string      `json:"owner,omitempty"`
	Class    string      `json:"storageClassName,omitempty"`
	Capacity int64       `json:"capacity,omitempty"`
	DiskSize int64       `json:"diskSize,omitempty"`
	Source   string      `json:"source,omitempty"`
	Status   ClaimStatus `json:"status"`
	// Conditions are CDI's Bound, Running and Ready.
	Conditions []Condition   `json:"conditions,omitempty"`
	Result     *ImportResult `json:"result,omitempty"`
	Attempts   int           `json:"attempts,omitempty"`
	Restarts   int           `json:"restarts,omitempty"`
	Consumers  []string      `json:"consumers,omitempty"`
}

// Condition is a DataVolume condition as CDI reports it.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Describe reports the storage of st as the last plan p saw it (p may be nil).
func (m *Manager) Describe(st *State, p *Plan) Description {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := Description{Settings: st.Settings, HostPath: st.HostPath}
	for _, name := range slices.Sorted(maps.Keys(st.Classes)) {
		c := st.Classes[name]
		d.Classes = append(d.Classes, ClassView{Name: c.Name, Provisioner: c.Provisioner, ReclaimPolicy: c.ReclaimPolicy,
			BindingMode: c.BindingMode, Default: c.Default, Features: c.Features, Used: m.classRecs[name] != nil})
	}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(m.volumeRecs)) {
		v := m.volumeRecs[name]
		seen[name] = true
		vv := VolumeView{Name: v.Name, Object: v.Object, Capacity: v.Capacity, VolumeMode: v.VolumeMode, Class: v.Class,
			ReclaimPolicy: v.ReclaimPolicy, Phase: v.Phase, Claim: v.Claim, Device: v.Device, Dynamic: v.Dynamic, Path: v.Dir}
		if v.Backing != "" {
			vv.Path = v.Backing
		}
		if v.Phase == VolumeReleased {
			vv.Claim = v.ReleasedFrom
		}
		d.Volumes = append(d.Volumes, vv)
	}
	for _, name := range slices.Sorted(maps.Keys(st.Volumes)) {
		if seen[name] {
			continue
		}
		v := st.Volumes[name]
		vv := VolumeView{Name: v.Name, Object: v.Object, Capacity: v.Capacity, VolumeMode: v.VolumeMode, Class: v.Class,
			ReclaimPolicy: v.ReclaimPolicy, Phase: PhasePending}
		// Unresolvable, the path is shown as written; the plan says why.
		var err error
		if vv.Path, err = m.host(v.Path); err != nil {
			vv.Path = v.Path
		}
		switch {
		case v.Loop:
			vv.Path, vv.Device = m.backing(v.Name), v.Path
		case v.Device:
			vv.Path, vv.Device = "", m.devicePath(v.Path)
		}
		d.Volumes = append(d.Volumes, vv)
	}
	keys := map[string]bool{}
	for k := range st.Claims {
		keys[k] = true
	}
	for k := range m.claimRecs {
		keys[k] = true
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		c, r := st.Claims[key], m.claimRecs[key]
		cv := ClaimView{Key: key}
		switch {
		case r != nil:
			cv.Status = statusOf(r)
			cv.Object, cv.Owner, cv.Result, cv.Attempts, cv.Restarts = r.Object, r.Owner, r.Result, r.Attempts, r.Restarts
			if r.Claim != nil && c == nil {
				c = r.Claim
			}
		case p != nil:
			cv.Status = p.Claims[key]
		}
		if c != nil {
			cv.Object, cv.Owner, cv.Class, cv.Capacity, cv.DiskSize, cv.Consumers = c.Object, c.Owner, c.Class, c.Capacity, c.DiskSize, c.Consumers
			if c.Source != nil {
				cv.Source = describeSource(c.Source)
			}
			if c.IsDataVolume() {
				cv.Conditions = conditions(cv.Status, m.jobs[key] != nil)
			}
		}
		if cv.Status.Phase == "" {
			cv.Status.Phase = PhasePending
		}
		d.Claims = append(d.Claims, cv)
	}
	return d
}

// conditions are CDI's DataVolume conditions for a status.
func conditions(s ClaimStatus, running bool) []Condition {
	b := func(ok bool) string {
		if ok {
			return "True"
		}
		return "False"
	}
	bound := s.Volume != ""
	out := []Condition{{Type: "Bound", Status: b(bound)}}
	if bound {
		out[0].Reason, out[0].Message = "Bound", "PVC bound to "+s.Volume
	} else {
		out[0].Reason, out[0].Message = s.Reason, s.Message
	}
	// CDI's upload server pod runs while the DataVolume is UploadReady.
	up := s.Phase == PhaseUploadReady
	run := Condition{Type: "Running", Status: b(running || up)}
	switch {
	case running || up:
		run.Reason = "Pod is running"
		if up {
			run.Message = s.Message
		}
	case s.Phase == PhaseFailed:
		run.Reason, run.Message = "Error", s.Message
	case s.Phase == PhaseSucceeded:
		run.Reason = "Completed"
	}
	ready := Condition{Type: "Ready", Status: b(s.Ready)}
	if !s.Ready {
		ready.Reason = strings.TrimSpace(s.Phase)
	}
	return append(out, run, ready)
}
