package domain

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Config disks: configMap, secret, downwardAPI and sysprep volumes become
// ISO 9660 images, one file per key at the root, as KubeVirt's virt-launcher
// builds them (pkg/config); the guest finds them by volume label or by the
// disk's serial.

const (
	// configLabel is KubeVirt's volume label when volumeLabel is unset.
	configLabel = "cfgdata"
	// sysprepLabel is KubeVirt's label for sysprep images; Windows Setup
	// searches every drive for the answer file, whatever its label.
	sysprepLabel = "unattendCD"
)

// isoLabel is what the runtime writes as an ISO volume identifier.
var isoLabel = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// configFiles builds the files and label of a config disk for volume vi,
// and whether they carry a Secret's values.
func configFiles(in Input, vi int, out *output) (files map[string][]byte, label string, secret, ok bool) {
	v := in.Spec.Volumes[vi]
	rel := fmt.Sprintf("volumes[%d]", vi)
	switch {
	case v.ConfigMap != nil:
		ref := SourceRef{Kind: "ConfigMap", Name: v.ConfigMap.Name}
		files, ok = keyFiles(in, ref, isTrue(v.ConfigMap.Optional), rel+".configMap", out)
		return files, labelOr(v.ConfigMap.VolumeLabel, rel+".configMap.volumeLabel", out), false, ok
	case v.Secret != nil:
		ref := SourceRef{Kind: "Secret", Name: v.Secret.SecretName}
		files, ok = keyFiles(in, ref, isTrue(v.Secret.Optional), rel+".secret", out)
		return files, labelOr(v.Secret.VolumeLabel, rel+".secret.volumeLabel", out), true, ok
	case v.DownwardAPI != nil:
		files, ok = downwardAPIFiles(in, v.DownwardAPI.Fields, rel+".downwardAPI", out)
		return files, labelOr(v.DownwardAPI.VolumeLabel, rel+".downwardAPI.volumeLabel", out), false, ok
	case v.Sysprep != nil:
		files, secret, ok = sysprepFiles(in, v.Sysprep, rel+".sysprep", out)
		return files, sysprepLabel, secret, ok
	}
	return nil, "", false, false
}

func labelOr(label, rel string, out *output) string {
	if label == "" {
		return configLabel
	}
	if !isoLabel.MatchString(label) {
		out.invalid(rel, "volume label %q must be 1-32 letters, digits, '-' or '_'", label)
	}
	return label
}

// keyFiles is one file per key of ref. An optional source that is missing
// gives an empty image, as the kubelet mounts an empty directory for it.
func keyFiles(in Input, ref SourceRef, optional bool, rel string, out *output) (map[string][]byte, bool) {
	if optional {
		if s, ok := in.Sources[ref]; !ok || s.Data == nil {
			return map[string][]byte{}, true
		}
	}
	data, ok := out.source(in, ref, rel)
	if !ok || !checkISOKeys(ref, data, rel, out) {
		return nil, false
	}
	files := make(map[string][]byte, len(data))
	for k, b := range data {
		files[k] = b
	}
	return files, true
}

// sysprepFiles is the sysprep ConfigMap's or Secret's keys; one of them must
// be Windows Setup's answer file, as KubeVirt checks before building the image.
func sysprepFiles(in Input, s *kubevirtv1.SysprepSource, rel string, out *output) (map[string][]byte, bool, bool) {
	var ref SourceRef
	switch {
	case s.ConfigMap != nil:
		ref, rel = SourceRef{Kind: "ConfigMap", Name: s.ConfigMap.Name}, rel+".configMap"
	case s.Secret != nil:
		ref, rel = SourceRef{Kind: "Secret", Name: s.Secret.Name}, rel+".secret"
	default:
		out.invalid(rel, "names neither a configMap nor a secret")
		return nil, false, false
	}
	data, ok := out.source(in, ref, rel)
	if !ok {
		return nil, false, false
	}
	// Windows looks files up without regard to case, and KubeVirt finds
	// the answer file so too: names are lower-cased, which also keeps a
	// usual answer file within plain ISO 9660.
	files := make(map[string][]byte, len(data))
	for _, k := range sortedKeys(data) {
		lower := strings.ToLower(k)
		if _, dup := files[lower]; dup {
			out.invalid(rel, "%s has keys that differ only in case (%q): Windows would see one file", ref, lower)
			return nil, false, false
		}
		files[lower] = data[k]
	}
	if !checkISOKeys(ref, files, rel, out) {
		return nil, false, false
	}
	for k := range files {
		if k == "autounattend.xml" || k == "unattend.xml" {
			return files, ref.Kind == "Secret", true
		}
	}
	out.invalid(rel, "%s has neither key autounattend.xml nor unattend.xml: Windows Setup would find no answer file", ref)
	return nil, false, false
}

// downwardAPIFiles renders the VMI's own metadata as the kubelet renders a
// pod's: one file per item, maps as sorted key="value" lines. KubeVirt
// shows the virt-launcher pod's metadata, which carries the VMI's labels
// and annotations; with no pod, the name is the VM's.
func downwardAPIFiles(in Input, items []corev1.DownwardAPIVolumeFile, rel string, out *output) (map[string][]byte, bool) {
	files := map[string][]byte{}
	ok := true
	for i, f := range items {
		at := fmt.Sprintf("%s.fields[%d]", rel, i)
		if f.ResourceFieldRef != nil {
			out.refuse(at+".resourceFieldRef", "container resources exist only in KubeVirt's virt-launcher pod")
			ok = false
			continue
		}
		if f.FieldRef == nil {
			out.invalid(at, "needs fieldRef")
			ok = false
			continue
		}
		val, good := downwardValue(in, f.FieldRef.FieldPath)
		if !good {
			out.refuse(at+".fieldRef.fieldPath", fmt.Sprintf("%q is not one of metadata.name, metadata.namespace, metadata.labels, metadata.annotations, "+
				"metadata.labels['KEY'], metadata.annotations['KEY']: other fields describe KubeVirt's pod and node", f.FieldRef.FieldPath))
			ok = false
			continue
		}
		for _, part := range strings.Split(f.Path, "/") {
			if len(part) > isoKeyMax || !isoKey.MatchString(part) || part == "." || part == ".." {
				out.invalid(at+".path", "path %q must be relative, its elements letters, digits, '-', '_' or '.', not . or ..", f.Path)
				ok = false
				break
			}
		}
		files[f.Path] = []byte(val)
	}
	return files, ok
}

// downwardValue is what the kubelet writes for fieldPath.
func downwardValue(in Input, path string) (string, bool) {
	switch path {
	case "metadata.name":
		return in.Name, true
	case "metadata.namespace":
		return in.Namespace, true
	case "metadata.labels":
		return formatMap(in.Labels), true
	case "metadata.annotations":
		return formatMap(in.Annotations), true
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": in.Labels, "metadata.annotations": in.Annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok = strings.CutSuffix(key, "']"); ok {
				return m[key], true
			}
		}
	}
	return "", false
}

// formatMap is the kubelet's rendering of labels and annotations: sorted
// key="value" lines, values quoted as Go quotes them, no final newline.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%v=%q", k, m[k])
	}
	return b.String()
}
