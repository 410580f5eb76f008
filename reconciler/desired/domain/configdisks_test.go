package domain

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

func secretSources(kv ...string) map[SourceRef]Source {
	out := map[SourceRef]Source{}
	for i := 0; i+3 < len(kv)+1; i += 4 {
		ref := SourceRef{Kind: kv[i], Name: kv[i+1]}
		s := out[ref]
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[kv[i+2]] = []byte(kv[i+3])
		out[ref] = s
	}
	return out
}

// A Secret's values reach the image and nothing else: not the artifact's
// JSON (plans, state records), not the domain XML, not a diagnostic; its
// digest changes with them, so the spec hash does.
func TestConvert_secretValuesStayOut(t *testing.T) {
	const value = "hunter2-do-not-print"
	spec := kubevirtv1.VirtualMachineInstanceSpec{
		Domain: kubevirtv1.DomainSpec{Memory: &kubevirtv1.Memory{Guest: qty("1Gi")}, Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
			{Name: "token"}, {Name: "seed"}, {Name: "drive"},
		}}},
		Volumes: []kubevirtv1.Volume{
			{Name: "token", VolumeSource: kubevirtv1.VolumeSource{Secret: &kubevirtv1.SecretVolumeSource{SecretName: "tok"}}},
			{Name: "seed", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
				UserDataSecretRef: &k8sv1.LocalObjectReference{Name: "creds"}}}},
			{Name: "drive", VolumeSource: kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{
				UserData: "#cloud-config\n"}}},
		},
		AccessCredentials: []kubevirtv1.AccessCredential{{SSHPublicKey: &kubevirtv1.SSHPublicKeyAccessCredential{
			Source:            kubevirtv1.SSHPublicKeyAccessCredentialSource{Secret: &kubevirtv1.AccessCredentialSecretSource{SecretName: "keys"}},
			PropagationMethod: kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod{ConfigDrive: &kubevirtv1.ConfigDriveSSHPublicKeyAccessCredentialPropagation{}},
		}}},
	}
	in := testInput(spec)
	in.Sources = secretSources("Secret", "creds", "userData", value, "Secret", "tok", "password", value,
		"Secret", "keys", "a", "ssh-ed25519 AAAA "+value)
	res := Convert(in, testContext)
	if res.Diags.HasErrors() {
		t.Fatalf("errors: %v", res.Diags.Err())
	}
	js, err := json.Marshal(res.Artifacts)
	if err != nil {
		t.Fatal(err)
	}
	xml, _ := res.Domain.Marshal()
	for what, s := range map[string]string{"artifact JSON": string(js), "domain XML": xml, "diagnostics": string(render(res))} {
		if strings.Contains(s, value) {
			t.Errorf("the %s carries the Secret's value:\n%s", what, s)
		}
	}
	byVolume := map[string]Artifact{}
	for _, a := range res.Artifacts {
		byVolume[a.Volume] = a
	}
	if got := string(byVolume["token"].SecretFiles["password"]); got != value {
		t.Errorf("secret volume file password = %q, want the value", got)
	}
	if got := string(byVolume["seed"].SecretFiles["user-data"]); got != value {
		t.Errorf("NoCloud user-data = %q, want the Secret's userData", got)
	}
	// The keys reach meta_data.json, which then counts as Secret content;
	// user_data stays inline.
	drive := byVolume["drive"]
	if _, ok := drive.Files[configDriveUserData]; !ok {
		t.Errorf("inline user_data moved out of Files: %v", drive.Files)
	}
	var md configDriveMetadata
	if err := json.Unmarshal(drive.SecretFiles[configDriveMetaData], &md); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"0": "ssh-ed25519 AAAA " + value}, md.PublicKeys); diff != "" {
		t.Errorf("public_keys (-want +got):\n%s", diff)
	}
	for _, v := range []string{"token", "seed", "drive"} {
		if byVolume[v].Digest == "" {
			t.Errorf("volume %s: no digest", v)
		}
	}

	// A changed value changes the digest.
	in.Sources[SourceRef{Kind: "Secret", Name: "creds"}] = Source{Data: map[string][]byte{"userData": []byte(value + "!")}}
	again := Convert(in, testContext)
	if again.Artifacts[1].Volume != "seed" || again.Artifacts[1].Digest == byVolume["seed"].Digest {
		t.Error("the digest did not change with the Secret's value")
	}
}

func TestConfigFiles_refusals(t *testing.T) {
	vol := func(name string, src kubevirtv1.VolumeSource) kubevirtv1.Volume {
		return kubevirtv1.Volume{Name: name, VolumeSource: src}
	}
	spec := kubevirtv1.VirtualMachineInstanceSpec{
		Volumes: []kubevirtv1.Volume{
			vol("a", kubevirtv1.VolumeSource{ConfigMap: &kubevirtv1.ConfigMapVolumeSource{LocalObjectReference: k8sv1.LocalObjectReference{Name: "absent"}}}),
			vol("b", kubevirtv1.VolumeSource{ConfigMap: &kubevirtv1.ConfigMapVolumeSource{LocalObjectReference: k8sv1.LocalObjectReference{Name: "absent"}, Optional: ptr(true)}}),
			vol("c", kubevirtv1.VolumeSource{Sysprep: &kubevirtv1.SysprepSource{Secret: &k8sv1.LocalObjectReference{Name: "win"}}}),
			vol("d", kubevirtv1.VolumeSource{ConfigMap: &kubevirtv1.ConfigMapVolumeSource{LocalObjectReference: k8sv1.LocalObjectReference{Name: "upper"}}}),
			vol("e", kubevirtv1.VolumeSource{DownwardAPI: &kubevirtv1.DownwardAPIVolumeSource{Fields: []k8sv1.DownwardAPIVolumeFile{
				{Path: "node", FieldRef: &k8sv1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
				{Path: "cpu", ResourceFieldRef: &k8sv1.ResourceFieldSelector{Resource: "limits.cpu"}},
			}}}),
			vol("f", kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: &k8sv1.LocalObjectReference{Name: "win"}}}),
			vol("g", kubevirtv1.VolumeSource{Sysprep: &kubevirtv1.SysprepSource{ConfigMap: &k8sv1.LocalObjectReference{Name: "upper-answer"}}}),
		},
	}
	for _, v := range spec.Volumes {
		spec.Domain.Devices.Disks = append(spec.Domain.Devices.Disks, kubevirtv1.Disk{Name: v.Name})
	}
	in := testInput(spec)
	in.Sources = secretSources("Secret", "win", "readme.txt", "x", "ConfigMap", "upper", "../up", "x",
		"ConfigMap", "upper-answer", "Autounattend.xml", "<unattend/>")
	in.Sources[SourceRef{Kind: "ConfigMap", Name: "absent"}] = Source{Missing: "not in the repository nor in the secrets directory"}
	_, out := run(configureDisks, in)
	p := "spec.template.spec."
	want := []diagLine{
		{"error", p + "volumes[0].configMap", "ConfigMap lab/absent: not in the repository nor in the secrets directory; the VM waits for it"},
		{"error", p + "volumes[2].sysprep.secret", "invalid: Secret win has neither key autounattend.xml nor unattend.xml: Windows Setup would find no answer file"},
		{"error", p + "volumes[3].configMap", `invalid: key "../up" of ConfigMap upper is not a valid key (letters, digits, '-', '_' or '.', at most 253, not . or ..): it cannot be a file of the disk`},
		{"error", p + "volumes[4].downwardAPI.fields[0].fieldRef.fieldPath", `unsupported: "spec.nodeName" is not one of metadata.name, metadata.namespace, metadata.labels, metadata.annotations, metadata.labels['KEY'], metadata.annotations['KEY']: other fields describe KubeVirt's pod and node`},
		{"error", p + "volumes[4].downwardAPI.fields[1].resourceFieldRef", "unsupported: container resources exist only in KubeVirt's virt-launcher pod"},
		{"error", p + "volumes[5].cloudInitNoCloud.secretRef", "invalid: Secret lab/win has neither key userdata nor userData"},
	}
	if diff := cmp.Diff(want, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	// The optional, missing ConfigMap is an empty image; the sysprep
	// answer file is found whatever its case, as Windows finds it.
	if len(out.artifacts) != 2 || out.artifacts[0].Volume != "b" || len(out.artifacts[0].Files) != 0 || out.artifacts[0].Label != "cfgdata" {
		t.Fatalf("artifacts = %+v, want an empty cfgdata image for volume b and a sysprep image", out.artifacts)
	}
	if a := out.artifacts[1]; a.Volume != "g" || a.Label != "unattendCD" || string(a.Files["autounattend.xml"]) != "<unattend/>" {
		t.Errorf("sysprep artifact = %+v", a)
	}
}

func TestCheckAccessCredentials(t *testing.T) {
	src := kubevirtv1.SSHPublicKeyAccessCredentialSource{Secret: &kubevirtv1.AccessCredentialSecretSource{SecretName: "keys"}}
	spec := kubevirtv1.VirtualMachineInstanceSpec{AccessCredentials: []kubevirtv1.AccessCredential{
		{SSHPublicKey: &kubevirtv1.SSHPublicKeyAccessCredential{Source: src, PropagationMethod: kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod{
			QemuGuestAgent: &kubevirtv1.QemuGuestAgentSSHPublicKeyAccessCredentialPropagation{Users: []string{"fedora"}}}}},
		{SSHPublicKey: &kubevirtv1.SSHPublicKeyAccessCredential{Source: src, PropagationMethod: kubevirtv1.SSHPublicKeyAccessCredentialPropagationMethod{
			NoCloud: &kubevirtv1.NoCloudSSHPublicKeyAccessCredentialPropagation{}}}},
		{UserPassword: &kubevirtv1.UserPasswordAccessCredential{}},
	}}
	_, out := run(checkAccessCredentials, testInput(spec))
	p := "spec.template.spec."
	want := []diagLine{
		{"error", p + "accessCredentials[0].sshPublicKey.propagationMethod.qemuGuestAgent", "unsupported: KubeVirt writes these keys through the qemu guest agent while the guest runs, which nodevirt does not drive; use propagationMethod noCloud or configDrive"},
		{"error", p + "accessCredentials[1].sshPublicKey.propagationMethod.noCloud", "invalid: needs a cloudInitNoCloud volume to carry the keys"},
		{"error", p + "accessCredentials[2].userPassword", "unsupported: KubeVirt sets passwords through the qemu guest agent while the guest runs, which nodevirt does not drive; set them in cloud-init user-data (chpasswd) instead"},
	}
	if diff := cmp.Diff(want, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}
