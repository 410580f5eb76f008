package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Secrets and ConfigMaps behind volumes, cloud-init and accessCredentials:
// which ones a spec names (the caller reads them before conversion) and how
// their content reaches an artifact without ever reaching its JSON.

// SourcesNeeded lists the Secrets and ConfigMaps spec names, in spec order,
// each once.
func SourcesNeeded(spec *kubevirtv1.VirtualMachineInstanceSpec) []SourceRef {
	var out []SourceRef
	add := func(kind, name string) {
		r := SourceRef{Kind: kind, Name: name}
		if name != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			add("ConfigMap", v.ConfigMap.Name)
		case v.Secret != nil:
			add("Secret", v.Secret.SecretName)
		case v.Sysprep != nil && v.Sysprep.ConfigMap != nil:
			add("ConfigMap", v.Sysprep.ConfigMap.Name)
		case v.Sysprep != nil && v.Sysprep.Secret != nil:
			add("Secret", v.Sysprep.Secret.Name)
		case v.CloudInitNoCloud != nil:
			if r := v.CloudInitNoCloud.UserDataSecretRef; r != nil {
				add("Secret", r.Name)
			}
			if r := v.CloudInitNoCloud.NetworkDataSecretRef; r != nil {
				add("Secret", r.Name)
			}
		case v.CloudInitConfigDrive != nil:
			if r := v.CloudInitConfigDrive.UserDataSecretRef; r != nil {
				add("Secret", r.Name)
			}
			if r := v.CloudInitConfigDrive.NetworkDataSecretRef; r != nil {
				add("Secret", r.Name)
			}
		}
	}
	for _, c := range spec.AccessCredentials {
		if k := c.SSHPublicKey; k != nil && k.Source.Secret != nil {
			add("Secret", k.Source.Secret.SecretName)
		}
	}
	return out
}

// ErrMissingSource marks a Secret or ConfigMap the caller could not read:
// the VM waits for it, the rest of the node is applied.
var ErrMissingSource = fmt.Errorf("%w: a Secret or ConfigMap it needs is missing", ErrInvalid)

// source returns the content of ref, or reports at rel why there is none.
func (o *output) source(in Input, ref SourceRef, rel string) (map[string][]byte, bool) {
	s, ok := in.Sources[ref]
	if !ok || s.Data == nil {
		why := s.Missing
		if why == "" {
			why = "not found"
		}
		o.add(diag.Error, ErrMissingSource, rel, "%s %s/%s: %s; the VM waits for it",
			ref.Kind, in.Namespace, ref.Name, why)
		return nil, false
	}
	return s.Data, true
}

// isoKey is a Kubernetes ConfigMap and Secret key, which becomes a file
// name at the root of the image. Names plain ISO 9660 cannot hold (upper
// case, several dots) are written with Rock Ridge names, as KubeVirt writes
// them (runtime/disks, with xorrisofs).
var isoKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

const isoKeyMax = 253

// checkISOKeys reports keys that cannot be file names.
func checkISOKeys(ref SourceRef, data map[string][]byte, rel string, out *output) bool {
	ok := true
	for _, k := range sortedKeys(data) {
		if len(k) > isoKeyMax || !isoKey.MatchString(k) || k == "." || k == ".." {
			out.add(diag.Error, ErrInvalid, rel, "invalid: key %q of %s is not a valid key (letters, digits, '-', '_' or '.', at most %d, not . or ..): "+
				"it cannot be a file of the disk", k, ref, isoKeyMax)
			ok = false
		}
	}
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// secretDigest hashes files that carry Secret values, length-prefixed so no
// two different inputs hash alike. It goes into the artifact's JSON in
// their place: the spec hash changes with them, nothing prints them.
func secretDigest(files map[string][]byte) string {
	if len(files) == 0 {
		return ""
	}
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("nodevirt-secret-files-v1"))
	for _, k := range sortedKeys(files) {
		field([]byte(k))
		field(files[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
