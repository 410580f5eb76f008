package domain

import (
	"encoding/base64"
	"encoding/json"

	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Cloud-init seed images: the files of the NoCloud and ConfigDrive volumes
// (configureDisks turns them into ISO artifacts).

// noCloudFiles builds the NoCloud seed's files: user-data, meta-data and,
// when given, network-config.
func noCloudFiles(in Input, c *kubevirtv1.CloudInitNoCloudSource, rel string, out *output) (map[string][]byte, bool) {
	if c.UserDataSecretRef != nil || c.NetworkDataSecretRef != nil {
		// Refused in the support table: secrets come later.
		return nil, false
	}
	user, ok := inlineOrBase64(c.UserData, c.UserDataBase64, rel+".userDataBase64", out)
	if !ok {
		return nil, false
	}
	network, ok := inlineOrBase64(c.NetworkData, c.NetworkDataBase64, rel+".networkDataBase64", out)
	if !ok {
		return nil, false
	}
	if user == nil {
		user = []byte{}
	}
	files := map[string][]byte{
		// cloud-init needs user-data to exist even when only network data is given.
		"user-data": user,
		// instance-id is the firmware UUID, as in KubeVirt: stable across
		// restarts, so cloud-init runs its once-per-instance modules once.
		"meta-data": []byte("instance-id: " + in.UUID + "\nlocal-hostname: " + hostname(in) + "\n"),
	}
	if network != nil {
		files["network-config"] = network
	}
	return files, true
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
// the hostname from hostname; instance_id is KubeVirt's "<name>.<namespace>".
type configDriveMetadata struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	Hostname   string `json:"hostname"`
	InstanceID string `json:"instance_id"`
}

// configDriveFiles builds the ConfigDrive image's files: user_data (empty
// when only network data is given, as cloud-init needs it to exist),
// meta_data.json and, when given, network_data.json (OpenStack network
// data, written as the user gave it).
func configDriveFiles(in Input, c *kubevirtv1.CloudInitConfigDriveSource, rel string, out *output) (map[string][]byte, bool) {
	if c.UserDataSecretRef != nil || c.NetworkDataSecretRef != nil {
		// Refused in the support table: secrets come later.
		return nil, false
	}
	user, ok := inlineOrBase64(c.UserData, c.UserDataBase64, rel+".userDataBase64", out)
	if !ok {
		return nil, false
	}
	network, ok := inlineOrBase64(c.NetworkData, c.NetworkDataBase64, rel+".networkDataBase64", out)
	if !ok {
		return nil, false
	}
	if user == nil {
		user = []byte{}
	}
	meta, err := json.Marshal(configDriveMetadata{
		UUID: in.UUID, Name: in.Name, Hostname: hostname(in), InstanceID: in.Name + "." + in.Namespace,
	})
	if err != nil {
		out.invalid(rel, "meta_data.json: %v", err)
		return nil, false
	}
	files := map[string][]byte{
		configDriveUserData: user,
		configDriveMetaData: append(meta, '\n'),
	}
	if network != nil {
		files[configDriveNetworkData] = network
	}
	return files, true
}

// hostname is spec.hostname, else the VM's name (KubeVirt's default).
func hostname(in Input) string {
	if in.Spec.Hostname != "" {
		return in.Spec.Hostname
	}
	return in.Name
}
