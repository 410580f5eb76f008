package storage

import (
	"fmt"
	"sort"
	"strings"
)

// ImportProgress is one import as a waiting caller shows it.
type ImportProgress struct {
	// Claim is namespace/name.
	Claim    string  `json:"claim"`
	Progress float64 `json:"progress"`
	// Size is the disk's size in bytes (0 for a whole device).
	Size int64 `json:"size,omitempty"`
	// Running is false once the import ended; Phase and Message then say
	// how (Succeeded, or Failed with the reason).
	Running bool   `json:"running"`
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
}

// Imports returns the claim keys of the imports rep started, sorted.
func (r Report) Imports() []string {
	keys := append([]string(nil), r.Started...)
	sort.Strings(keys)
	return keys
}

// Imports reports the imports of claims keys (namespace/name) and of every
// import running now, sorted by claim.
func (m *Manager) Imports(keys []string) []ImportProgress {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	var out []ImportProgress
	add := func(key string) {
		if seen[key] {
			return
		}
		seen[key] = true
		r := m.claimRecs[key]
		if r == nil {
			return
		}
		s := statusOf(r)
		p := ImportProgress{Claim: key, Progress: s.Progress, Running: m.jobs[key] != nil, Phase: s.Phase, Message: s.Message}
		if r.Claim != nil {
			p.Size = r.Claim.DiskSize
		}
		out = append(out, p)
	}
	for _, k := range keys {
		add(k)
	}
	for k := range m.jobs {
		add(k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Claim < out[j].Claim })
	return out
}

// ImportsErr is non-nil when any of imps failed or was cancelled, naming
// each with its reason.
func ImportsErr(imps []ImportProgress) error {
	var msgs []string
	for _, p := range imps {
		if p.Running || p.Phase == PhaseSucceeded {
			continue
		}
		if p.Phase == PhaseFailed {
			msgs = append(msgs, fmt.Sprintf("import %s failed: %s", p.Claim, p.Message))
		} else {
			msgs = append(msgs, fmt.Sprintf("import %s did not finish (%s): %s", p.Claim, p.Phase, p.Message))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
