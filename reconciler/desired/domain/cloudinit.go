package domain

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Cloud-init seed images: the files of the NoCloud and ConfigDrive volumes
// (configureDisks turns them into ISO artifacts), their data inline or from
// Secrets, and the accessCredentials keys KubeVirt passes through them.

// noCloudFiles builds the NoCloud seed's files: user-data, meta-data and,
// when given, network-config; secret names the files that carry a
// Secret's values (they must never be printed).
func noCloudFiles(in Input, c *kubevirtv1.CloudInitNoCloudSource, rel string, out *output) (files map[string][]byte, secret map[string]bool, ok bool) {
	secret = map[string]bool{}
	user, fromSecret, ok := cloudInitData(in, c.UserData, c.UserDataBase64, c.UserDataSecretRef, userDataKeys, rel, "userData", out)
	if !ok {
		return nil, nil, false
	}
	secret["user-data"] = fromSecret
	network, fromSecret, ok := cloudInitData(in, c.NetworkData, c.NetworkDataBase64, c.NetworkDataSecretRef, networkDataKeys, rel, "networkData", out)
	if !ok {
		return nil, nil, false
	}
	secret["network-config"] = fromSecret
	keys, ok := sshKeys(in, func(m kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod) bool { return m.NoCloud != nil }, out)
	if !ok {
		return nil, nil, false
	}
	if user == nil {
		user = []byte{}
	}
	// instance-id is the firmware UUID, as in KubeVirt: stable across
	// restarts, so cloud-init runs its once-per-instance modules once.
	meta := "instance-id: " + in.UUID + "\nlocal-hostname: " + hostname(in) + "\n"
	if len(keys) > 0 {
		// KubeVirt hands accessCredentials keys to cloud-init as
		// meta-data public-keys, which cloud-init installs for the
		// default user. JSON strings are YAML double-quoted scalars.
		meta += "public-keys:\n"
		for i, k := range keys {
			q, _ := json.Marshal(k)
			meta += fmt.Sprintf("  \"%d\": %s\n", i, q)
		}
		secret["meta-data"] = true
	}
	files = map[string][]byte{
		// cloud-init needs user-data to exist even when only network data is given.
		"user-data": user,
		"meta-data": []byte(meta),
	}
	if network != nil {
		files["network-config"] = network
	}
	return files, secret, true
}

// The keys KubeVirt reads from a userDataSecretRef or networkDataSecretRef
// Secret, in its order.
var (
	userDataKeys    = []string{"userdata", "userData"}
	networkDataKeys = []string{"networkdata", "networkData"}
)

// cloudInitData is inline or base64 data, or the first of keys in the
// Secret ref names; fromSecret says which.
func cloudInitData(in Input, inline, b64 string, ref *corev1.LocalObjectReference, keys []string, rel, field string, out *output) (data []byte, fromSecret, ok bool) {
	if ref == nil {
		data, ok = inlineOrBase64(inline, b64, rel+"."+field+"Base64", out)
		return data, false, ok
	}
	at := rel + "." + field + "SecretRef"
	if field == "userData" {
		at = rel + ".secretRef" // KubeVirt's JSON name for userDataSecretRef
	}
	src := SourceRef{Kind: "Secret", Name: ref.Name}
	secretData, ok := out.source(in, src, at)
	if !ok {
		return nil, false, false
	}
	for _, k := range keys {
		if b, found := secretData[k]; found {
			return b, true, true
		}
	}
	// KubeVirt starts the VM with empty data when only one of the two
	// refs finds nothing; a ref that names a Secret without the data is
	// more likely a typo than an intent, so it is refused.
	out.invalid(at, "Secret %s/%s has neither key %s nor %s", in.Namespace, ref.Name, keys[0], keys[1])
	return nil, false, false
}

// seedArtifact puts files into a, those named in secret as SecretFiles.
func seedArtifact(a Artifact, files map[string][]byte, secret map[string]bool) *Artifact {
	for name, b := range files {
		if secret[name] {
			if a.SecretFiles == nil {
				a.SecretFiles = map[string][]byte{}
			}
			a.SecretFiles[name] = b
			continue
		}
		if a.Files == nil {
			a.Files = map[string][]byte{}
		}
		a.Files[name] = b
	}
	a.Digest = secretDigest(a.SecretFiles)
	return &a
}

func inlineOrBase64(inline, b64, rel string, out *output) ([]byte, bool) {
	if inline != "" {
		return []byte(inline), true
	}
	if b64 == "" {
		return nil, true
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		out.invalid(rel, "not valid base64: %v", err)
		return nil, false
	}
	return b, true
}

// Paths inside a ConfigDrive image, as cloud-init's OpenStack reader expects.
const (
	configDriveUserData    = "openstack/latest/user_data"
	configDriveMetaData    = "openstack/latest/meta_data.json"
	configDriveNetworkData = "openstack/latest/network_data.json"
)

// configDriveMetadata is meta_data.json. cloud-init takes the instance-id
// from uuid (the firmware UUID, stable across restarts, as for NoCloud) and
// the hostname from hostname; instance_id is KubeVirt's "<name>.<namespace>";
// public_keys are the accessCredentials keys, as KubeVirt writes them.
type configDriveMetadata struct {
	UUID       string            `json:"uuid"`
	Name       string            `json:"name"`
	Hostname   string            `json:"hostname"`
	InstanceID string            `json:"instance_id"`
	PublicKeys map[string]string `json:"public_keys,omitempty"`
}

// configDriveFiles builds the ConfigDrive image's files: user_data (empty
// when only network data is given, as cloud-init needs it to exist),
// meta_data.json and, when given, network_data.json (OpenStack network
// data, written as the user gave it); secret names the files that carry a
// Secret's values.
func configDriveFiles(in Input, c *kubevirtv1.CloudInitConfigDriveSource, rel string, out *output) (files map[string][]byte, secret map[string]bool, ok bool) {
	secret = map[string]bool{}
	user, fromSecret, ok := cloudInitData(in, c.UserData, c.UserDataBase64, c.UserDataSecretRef, userDataKeys, rel, "userData", out)
	if !ok {
		return nil, nil, false
	}
	secret[configDriveUserData] = fromSecret
	network, fromSecret, ok := cloudInitData(in, c.NetworkData, c.NetworkDataBase64, c.NetworkDataSecretRef, networkDataKeys, rel, "networkData", out)
	if !ok {
		return nil, nil, false
	}
	secret[configDriveNetworkData] = fromSecret
	keys, ok := sshKeys(in, func(m kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod) bool { return m.ConfigDrive != nil }, out)
	if !ok {
		return nil, nil, false
	}
	if user == nil {
		user = []byte{}
	}
	md := configDriveMetadata{
		UUID: in.UUID, Name: in.Name, Hostname: hostname(in), InstanceID: in.Name + "." + in.Namespace,
	}
	if len(keys) > 0 {
		md.PublicKeys = map[string]string{}
		for i, k := range keys {
			md.PublicKeys[strconv.Itoa(i)] = k
		}
		secret[configDriveMetaData] = true
	}
	meta, err := json.Marshal(md)
	if err != nil {
		out.invalid(rel, "meta_data.json: %v", err)
		return nil, nil, false
	}
	files = map[string][]byte{
		configDriveUserData: user,
		configDriveMetaData: append(meta, '\n'),
	}
	if network != nil {
		files[configDriveNetworkData] = network
	}
	return files, secret, true
}

// sshKeys are the public keys of the accessCredentials whose propagation
// method uses matches: every non-empty key of their Secrets, Secret by
// Secret in spec order and key by key in name order, as KubeVirt reads the
// mounted Secret directories.
func sshKeys(in Input, uses func(kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod) bool, out *output) ([]string, bool) {
	var keys []string
	ok := true
	for i, c := range in.Spec.AccessCredentials {
		k := c.SSHPublicKey
		if k == nil || k.Source.Secret == nil || !uses(k.PropagationMethod) {
			continue
		}
		data, found := out.source(in, SourceRef{Kind: "Secret", Name: k.Source.Secret.SecretName},
			fmt.Sprintf("accessCredentials[%d].sshPublicKey.source.secret.secretName", i))
		if !found {
			ok = false
			continue
		}
		for _, name := range sortedKeys(data) {
			if len(data[name]) > 0 {
				keys = append(keys, string(data[name]))
			}
		}
	}
	return keys, ok
}

// hostname is spec.hostname, else the VM's name (KubeVirt's default).
func hostname(in Input) string {
	if in.Spec.Hostname != "" {
		return in.Spec.Hostname
	}
	return in.Name
}
