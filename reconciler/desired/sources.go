package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// SecretReader reads Secrets and ConfigMaps kept outside the repository
// (the agent's --secrets-dir).
type SecretReader interface {
	Read(namespace, name string) (map[string][]byte, error)
}

// ErrSecretInGit warns about a plain Secret in the repository that a VM uses.
var ErrSecretInGit = errors.New("credentials in a Secret in git are readable by everyone who can read the repository; " +
	"keep them in the agent's secrets directory or encrypt them with SOPS")

// sourceResolver finds the Secrets and ConfigMaps a VM names: in the
// repository first, as Flux applies what git holds over what the cluster
// has, else in the secrets directory.
type sourceResolver struct {
	objs    map[manifests.Ref]*manifests.Object
	outside SecretReader
	// plain are the unencrypted Secrets of the repository VMs use, with
	// the VMs that use them, for one warning each.
	plain map[manifests.Ref][]string
	// read are the digests of what was read outside the repository, by
	// namespace/name ("" for a miss): SourcesChanged compares them.
	read map[string]string
}

func newSourceResolver(set *manifests.Set, outside SecretReader) *sourceResolver {
	r := &sourceResolver{objs: map[manifests.Ref]*manifests.Object{}, outside: outside, plain: map[manifests.Ref][]string{}, read: map[string]string{}}
	for _, kind := range []string{"Secret", "ConfigMap"} {
		for _, o := range set.OfKind(kind) {
			if _, dup := r.objs[o.Ref]; !dup {
				r.objs[o.Ref] = o
			}
		}
	}
	return r
}

// resolve reads every source spec names; a missing one says why.
func (r *sourceResolver) resolve(vm *manifests.Object, spec *kubevirtv1.VirtualMachineInstanceSpec) map[domain.SourceRef]domain.Source {
	refs := domain.SourcesNeeded(spec)
	if len(refs) == 0 {
		return nil
	}
	out := make(map[domain.SourceRef]domain.Source, len(refs))
	for _, ref := range refs {
		out[ref] = r.one(vm, ref)
	}
	return out
}

func (r *sourceResolver) one(vm *manifests.Object, ref domain.SourceRef) domain.Source {
	key := manifests.Ref{Kind: ref.Kind, Namespace: vm.Ref.Namespace, Name: ref.Name}
	if o := r.objs[key]; o != nil {
		switch v := o.Value.(type) {
		case *corev1.Secret:
			if !o.Encrypted && !contains(r.plain[key], vm.Ref.String()) {
				r.plain[key] = append(r.plain[key], vm.Ref.String())
			}
			data := make(map[string][]byte, len(v.Data)+len(v.StringData))
			for k, b := range v.Data {
				data[k] = b
			}
			// The API server writes stringData over data.
			for k, s := range v.StringData {
				data[k] = []byte(s)
			}
			return domain.Source{Data: data}
		case *corev1.ConfigMap:
			data := make(map[string][]byte, len(v.Data)+len(v.BinaryData))
			for k, s := range v.Data {
				data[k] = []byte(s)
			}
			for k, b := range v.BinaryData {
				data[k] = b
			}
			return domain.Source{Data: data}
		}
		return domain.Source{Missing: fmt.Sprintf("the %s in the repository (%s:%d) is invalid; fix its errors", ref.Kind, o.File, o.Line)}
	}
	if r.outside == nil {
		return domain.Source{Missing: "not in the repository, and no secrets directory is read"}
	}
	data, err := r.outside.Read(vm.Ref.Namespace, ref.Name)
	r.read[vm.Ref.Namespace+"/"+ref.Name] = outsideDigest(data, err)
	if err != nil {
		return domain.Source{Missing: "not in the repository; " + err.Error()}
	}
	return domain.Source{Data: data}
}

// outsideDigest stands for one read of the secrets directory.
func outsideDigest(data map[string][]byte, err error) string {
	if err != nil {
		return ""
	}
	h := sha256.New()
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SourcesChanged reports whether a Secret or ConfigMap the state read
// outside the repository reads differently now (changed, added or gone):
// the VMs must then be rendered again, as for a new revision.
func (s *State) SourcesChanged(r SecretReader) bool {
	if s == nil || r == nil {
		return false
	}
	for key, was := range s.outside {
		ns, name, _ := strings.Cut(key, "/")
		data, err := r.Read(ns, name)
		if outsideDigest(data, err) != was {
			return true
		}
	}
	return false
}

// warnings are one warning per plain Secret of the repository a VM uses.
func (r *sourceResolver) warnings() diag.List {
	keys := make([]manifests.Ref, 0, len(r.plain))
	for k := range r.plain {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var out diag.List
	for _, k := range keys {
		out = append(out, r.objs[k].Warnf("", "%w: used by %s", ErrSecretInGit, strings.Join(r.plain[k], ", ")))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// templateLabels are what the VMI's labels would be: a VM's template
// labels, a VMI's own.
func templateLabels(o *manifests.Object) map[string]string {
	switch v := o.Value.(type) {
	case *kubevirtv1.VirtualMachine:
		if v.Spec.Template != nil {
			return v.Spec.Template.ObjectMeta.Labels
		}
	case *kubevirtv1.VirtualMachineInstance:
		return v.Labels
	}
	return nil
}
