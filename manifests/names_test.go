package manifests

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Names that are path elements or that would make two domain names collide
// are refused by the per-kind Kubernetes rule, at metadata.name or
// metadata.namespace, and only the object that carries them is invalid.
func TestNames_kubernetesRules(t *testing.T) {
	good := "---\napiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: fine}\nspec:\n  runStrategy: Halted\n" + tmpl
	for _, tc := range []struct {
		kind, apiVersion, name, namespace, path, rule string
	}{
		{"VirtualMachine", "kubevirt.io/v1", "..", "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachine", "kubevirt.io/v1", ".", "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachine", "kubevirt.io/v1", "a/b", "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachine", "kubevirt.io/v1", "A_B", "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachine", "kubevirt.io/v1", "b_c", "a", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachine", "kubevirt.io/v1", "c", "a_b", "metadata.namespace", "DNS-1123 label"},
		{"VirtualMachine", "kubevirt.io/v1", "c", "..", "metadata.namespace", "DNS-1123 label"},
		{"VirtualMachine", "kubevirt.io/v1", strings.Repeat("a", 254), "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachineInstance", "kubevirt.io/v1", "../x", "", "metadata.name", "DNS-1123 subdomain"},
		{"DataVolume", "cdi.kubevirt.io/v1beta1", "../../etc", "", "metadata.name", "DNS-1123 subdomain"},
		{"PersistentVolumeClaim", "v1", "x/..", "", "metadata.name", "DNS-1123 subdomain"},
		{"PersistentVolume", "v1", "..", "", "metadata.name", "DNS-1123 subdomain"},
		{"StorageClass", "storage.k8s.io/v1", "Fast", "", "metadata.name", "DNS-1123 subdomain"},
		{"Node", "v1", "node_1", "", "metadata.name", "DNS-1123 subdomain"},
		{"Namespace", "v1", "a.b", "", "metadata.name", "DNS-1123 label"},
		{"NetworkAttachmentDefinition", "k8s.cni.cncf.io/v1", "..", "", "metadata.name", "DNS-1123 subdomain"},
		{"VirtualMachineClusterInstancetype", "instancetype.kubevirt.io/v1beta1", "u1_small", "", "metadata.name", "DNS-1123 subdomain"},
		{"HostPathProvisioner", "hostpathprovisioner.kubevirt.io/v1beta1", "..", "", "metadata.name", "DNS-1123 subdomain"},
		{"MachineConfig", "machineconfiguration.openshift.io/v1", "99_x", "", "metadata.name", "DNS-1123 subdomain"},
	} {
		t.Run(tc.kind+"/"+tc.namespace+"/"+tc.name[:min(len(tc.name), 12)], func(t *testing.T) {
			meta := fmt.Sprintf("{name: %q}", tc.name)
			if tc.namespace != "" {
				meta = fmt.Sprintf("{name: %q, namespace: %q}", tc.name, tc.namespace)
			}
			src := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: %s\n", tc.apiVersion, tc.kind, meta) + good
			s := parse(t, src)
			var hit bool
			for _, d := range s.Diags.Errors() {
				if errors.Is(d, ErrInvalidName) {
					hit = true
					if d.Path != tc.path || !strings.Contains(d.Message, tc.rule) || d.File != "test.yaml" || d.Line != 3 {
						t.Errorf("diagnostic %q: want %s:3 path %s and rule %q", d.Error(), "test.yaml", tc.path, tc.rule)
					}
				}
			}
			if !hit {
				t.Fatalf("no invalid-name error; diagnostics: %v", s.Diags)
			}
			for _, o := range s.Objects {
				if want := o.Ref.Name == "fine"; o.Valid != want {
					t.Errorf("%s: Valid = %v, want %v (only the badly named object is invalid)", o.Ref, o.Valid, want)
				}
			}
			if s.Incomplete {
				t.Errorf("an invalid name must not make the set incomplete: the object is known")
			}
		})
	}
}

func TestNames_valid(t *testing.T) {
	for _, name := range []string{"vm", "my-vm.prod", "a", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)} {
		s := parse(t, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: "+name+", namespace: team-1}\nspec:\n  runStrategy: Halted\n"+tmpl)
		if err := s.Diags.Err(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The --namespace default is checked like a written one, and the error says
// where it came from.
func TestNames_defaultNamespace(t *testing.T) {
	s := Parse("test.yaml", []byte(vm("  runStrategy: Halted\n"+tmpl)), Options{DefaultNamespace: "Bad_NS"})
	errs := s.Diags.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidName) || errs[0].Path != "metadata.namespace" || !strings.Contains(errs[0].Message, "--namespace") {
		t.Fatalf("diagnostics = %v", s.Diags)
	}
}

// The hostpath provisioner creates and removes directories in its path: a
// system directory (or one inside it, for the pseudo file systems and the
// OS's own trees), nodevirt's state directory, or an unclean path is refused
// at the field.
func TestHostPathProvisioner_systemDirectories(t *testing.T) {
	hpp := func(p string) string {
		return fmt.Sprintf("apiVersion: hostpathprovisioner.kubevirt.io/v1beta1\nkind: HostPathProvisioner\nmetadata: {name: hpp}\nspec:\n  pathConfig: {path: %q}\n  storagePools: [{name: p, path: %q}]\n", p, p)
	}
	for _, tc := range []struct {
		path string
		rule error
	}{
		{"/etc", ErrHostPathSystem}, {"/etc/hp", ErrHostPathSystem}, {"/boot", ErrHostPathSystem},
		{"/usr", ErrHostPathSystem}, {"/usr/local/hp", ErrHostPathSystem}, {"/proc/1", ErrHostPathSystem},
		{"/sys", ErrHostPathSystem}, {"/dev/shm", ErrHostPathSystem}, {"/run", ErrHostPathSystem},
		{"/root", ErrHostPathSystem}, {"/lib64", ErrHostPathSystem}, {"/var/lib/libvirt/images", ErrHostPathSystem},
		{"/var/lib/nodevirt", ErrHostPathSystem}, {"/srv/state/disks", ErrHostPathSystem},
		{"/var", ErrHostPathSystem}, {"/var/lib", ErrHostPathSystem}, {"/home", ErrHostPathSystem},
		{"/", ErrHostPathRoot}, {"relative", ErrHostPathRoot},
		{"/var/hp/../../etc", ErrHostPathNotClean}, {"/var/hp/", ErrHostPathNotClean}, {"//etc", ErrHostPathNotClean},
	} {
		s := Parse("hpp.yaml", []byte(hpp(tc.path)), Options{StateDir: "/srv/state"})
		for _, at := range []string{"spec.pathConfig.path", "spec.storagePools[0].path"} {
			var found bool
			for _, d := range s.Diags.Errors() {
				found = found || (d.Path == at && errors.Is(d, tc.rule))
			}
			if !found {
				t.Errorf("%s at %s: want %v, got %v", tc.path, at, tc.rule, s.Diags)
			}
		}
	}
	for _, ok := range []string{"/var/hpvolumes", "/var/lib/hp", "/srv/hp", "/home/vms", "/mnt/data/hp"} {
		if err := Parse("hpp.yaml", []byte(hpp(ok)), Options{StateDir: "/srv/state"}).Diags.Err(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
