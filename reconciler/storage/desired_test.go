package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

func build(t *testing.T, yaml string) *State {
	t.Helper()
	return Build(manifests.Parse("s.yaml", []byte(yaml), manifests.Options{}), Options{Node: "node01"})
}

func findDiag(l diag.List, rule error) *diag.Diagnostic {
	for i, d := range l {
		if errors.Is(d.Err, rule) {
			return &l[i]
		}
	}
	return nil
}

// Each storage rule: its sentinel, the field path the user wrote, and the
// severity (an error makes the object keep its last good state).
func TestBuild_rules(t *testing.T) {
	dv := func(spec string) string {
		return "---\napiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: dv, namespace: default}\nspec:\n" + spec
	}
	pv := func(spec string) string {
		return "---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec:\n" + spec
	}
	unknown := `---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: mystery}
provisioner: example.com/mystery
`
	for _, c := range []struct {
		name   string
		yaml   string
		rule   error
		path   string
		object string
		sev    diag.Severity
	}{
		{"reclaim recycle", "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: c}\nprovisioner: x/y\nreclaimPolicy: Recycle\n", ErrReclaimPolicy, "reclaimPolicy", "StorageClass c", diag.Error},
		{"binding mode", "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: c}\nprovisioner: x/y\nvolumeBindingMode: Later\n", ErrBindingMode, "volumeBindingMode", "StorageClass c", diag.Error},
		{"hostpath class without provisioner CR", "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: c}\nprovisioner: kubevirt.io/hostpath-provisioner\n", ErrNoHostPath, "provisioner", "StorageClass c", diag.Error},
		{"pv capacity", pv("  hostPath: {path: /var/pv}\n  accessModes: [ReadWriteOnce]\n"), ErrCapacityRequired, "spec.capacity.storage", "PersistentVolume pv", diag.Error},
		{"pv access modes", pv("  hostPath: {path: /var/pv}\n  capacity: {storage: 1Gi}\n"), ErrAccessModes, "spec.accessModes", "PersistentVolume pv", diag.Error},
		{"pv source", pv("  nfs: {server: s, path: /x}\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n"), ErrVolumeSource, "spec", "PersistentVolume pv", diag.Error},
		{"local without affinity", pv("  local: {path: /var/pv}\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n"), ErrLocalNodeAffinity, "spec.nodeAffinity", "PersistentVolume pv", diag.Error},
		{"block not loop", pv("  hostPath: {path: /dev/sdb}\n  volumeMode: Block\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n"), ErrBlockLoop, "spec.hostPath.path", "PersistentVolume pv", diag.Error},
		{"relative path", pv("  hostPath: {path: var/pv}\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n"), ErrPathAbsolute, "spec.hostPath.path", "PersistentVolume pv", diag.Error},
		{"dv pvc and storage", dv("  source: {blank: {}}\n  pvc: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVPVCStorage, "spec", "DataVolume default/dv", diag.Error},
		// Written with nothing under it: the API with its defaults, so the
		// field it needs is named.
		{"dv storage written empty", dv("  source: {blank: {}}\n  storage:\n"), ErrStorageRequired, "spec.storage.resources.requests.storage", "DataVolume default/dv", diag.Error},
		{"dv storage {}", dv("  source: {blank: {}}\n  storage: {}\n"), ErrStorageRequired, "spec.storage.resources.requests.storage", "DataVolume default/dv", diag.Error},
		{"dv pvc written empty", dv("  source: {blank: {}}\n  pvc:\n"), ErrPVCAccessModes, "spec.pvc.accessModes", "DataVolume default/dv", diag.Error},
		{"dv neither", dv("  source: {blank: {}}\n"), ErrDVPVCStorage, "spec", "DataVolume default/dv", diag.Error},
		{"dv pvc api access modes", dv("  source: {blank: {}}\n  pvc: {resources: {requests: {storage: 1Gi}}}\n"), ErrPVCAccessModes, "spec.pvc.accessModes", "DataVolume default/dv", diag.Error},
		{"dv no size", dv("  source: {blank: {}}\n  storage: {}\n"), ErrStorageRequired, "spec.storage.resources.requests.storage", "DataVolume default/dv", diag.Error},
		{"dv sourceRef", dv("  sourceRef: {kind: DataSource, name: fedora}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVSourceRef, "spec.sourceRef", "DataVolume default/dv", diag.Error},
		{"dv s3", dv("  source: {s3: {url: \"s3://b/k\"}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVSourceNotLocal, "spec.source.s3", "DataVolume default/dv", diag.Error},
		{"dv url", dv("  source: {http: {url: \"ftp://x/y\"}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVURL, "spec.source.http.url", "DataVolume default/dv", diag.Error},
		{"dv checksum", dv("  source: {http: {url: \"http://x/y\", checksum: \"sha256:abc\"}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVChecksum, "spec.source.http.checksum", "DataVolume default/dv", diag.Error},
		{"dv registry url", dv("  source: {registry: {url: \"quay.io/x\"}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVRegistryURL, "spec.source.registry.url", "DataVolume default/dv", diag.Error},
		{"dv archive", dv("  source: {blank: {}}\n  contentType: archive\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVArchive, "spec.contentType", "DataVolume default/dv", diag.Error},
		{"dv clone source missing", dv("  source: {pvc: {name: nope}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n"), ErrDVCloneSource, "spec.source.pvc", "DataVolume default/dv", diag.Error},
		{"dv unknown class", dv("  source: {blank: {}}\n  storage: {storageClassName: nope, resources: {requests: {storage: 1Gi}}}\n"), nil, "spec.storage.storageClassName", "DataVolume default/dv", diag.Error},
		{"unknown provisioner, empty profile", unknown + dv("  source: {blank: {}}\n  storage: {storageClassName: mystery, resources: {requests: {storage: 1Gi}}}\n"), ErrDVProfile, "spec.storage", "DataVolume default/dv", diag.Error},
		{"overhead", "apiVersion: cdi.kubevirt.io/v1beta1\nkind: CDI\nmetadata: {name: cdi}\nspec: {config: {filesystemOverhead: {global: \"1.5\"}}}\n", ErrOverhead, "spec.config.filesystemOverhead.global", "CDI cdi", diag.Error},
		// The hostpath provisioner's own storage-pool example.
		{"hpp pvcTemplate", "apiVersion: hostpathprovisioner.kubevirt.io/v1beta1\nkind: HostPathProvisioner\nmetadata: {name: hostpath-provisioner}\nspec:\n  imagePullPolicy: Always\n  storagePools:\n    - name: local\n      path: /var/hpvolumes\n      pvcTemplate:\n        volumeMode: Block\n        storageClassName: local-block\n        accessModes: [ReadWriteOnce]\n        resources: {requests: {storage: 5Gi}}\n  workload: {nodeSelector: {kubernetes.io/os: linux}}\n",
			ErrHostPathPVCTemplate, "spec.storagePools[0].pvcTemplate", "HostPathProvisioner default/hostpath-provisioner", diag.Warning},
		{"claim missing", vm("web", "dv:nope"), ErrClaimMissing, "spec.template.spec.volumes[0].dataVolume.name", "VirtualMachine default/web", diag.Warning},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := build(t, c.yaml)
			var d *diag.Diagnostic
			if c.rule != nil {
				d = findDiag(st.Diags, c.rule)
			} else if len(st.Diags) > 0 {
				d = &st.Diags[0]
			}
			if d == nil {
				t.Fatalf("no diagnostic %v in %v", c.rule, st.Diags)
			}
			if d.Path != c.path || d.Object != c.object || d.Severity != c.sev || d.Line == 0 || d.File != "s.yaml" {
				t.Errorf("got %s (severity %s); want path %q object %q severity %s", d.Error(), d.Severity, c.path, c.object, c.sev)
			}
			if c.sev == diag.Error && st.Invalid[c.object] == "" {
				t.Errorf("%s is not marked invalid", c.object)
			}
		})
	}
}

// Storage API sizes (seed 8.18.3, 8.18.4): the claim grows by the overhead
// (global or per class) and the disk keeps the request; the PVC API keeps
// the claim and shrinks the disk; Block has no overhead.
func TestBuild_overheadAndProfile(t *testing.T) {
	yaml := hostpathBase + `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: CDI
metadata: {name: cdi}
spec:
  config:
    filesystemOverhead:
      global: "0.07"
      storageClass: {hostpath-retain: "0.04"}
    preallocation: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: mystery}
provisioner: example.com/mystery
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: StorageProfile
metadata: {name: mystery}
spec:
  claimPropertySets:
    - {accessModes: [ReadWriteMany], volumeMode: Block}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: global, namespace: default}
spec:
  source: {blank: {}}
  storage: {resources: {requests: {storage: 1Gi}}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: perclass, namespace: default}
spec:
  source: {blank: {}}
  preallocation: false
  pvc: {storageClassName: hostpath-retain, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: profiled, namespace: default}
spec:
  source: {blank: {}}
  storage: {storageClassName: mystery, resources: {requests: {storage: 1Gi}}}
`
	st := build(t, yaml)
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	g := st.Claims["default/global"]
	if g.Overhead != 0.07 || g.DiskSize != 1<<30 || g.Capacity != 1102<<20 || !g.Preallocate {
		t.Errorf("global: %+v", g)
	}
	pc := st.Claims["default/perclass"]
	if pc.Overhead != 0.04 || pc.Capacity != 1<<30 || pc.DiskSize != 983<<20 || pc.Preallocate {
		t.Errorf("per class, PVC API: %+v", pc)
	}
	pr := st.Claims["default/profiled"]
	if pr.VolumeMode != Block || len(pr.AccessModes) != 1 || pr.AccessModes[0] != ReadWriteMany || pr.Capacity != 1<<30 || pr.DiskSize != 0 {
		t.Errorf("from the StorageProfile: %+v", pr)
	}
	if f := st.Classes["mystery"].Features; f.Kind != "Other multi-node writable storage" {
		t.Errorf("matrix row %+v", f)
	}
	if f := st.Classes["hostpath-provisioner"].Features; f.Snapshot != "no" || f.HostAssistedClone != "yes" {
		t.Errorf("hostpath row %+v", f)
	}
}

// The seed's matrix refuses with its reason.
func TestClass_Supports(t *testing.T) {
	st := build(t, hostpathBase)
	hp := st.Classes["hostpath-provisioner"]
	if ok, why := hp.Supports(OpSnapshot, nil); ok || !strings.Contains(why, "not supported by OpenShift Virtualization hostpath provisioner") {
		t.Errorf("snapshot: %v %q", ok, why)
	}
	if ok, _ := hp.Supports(OpHostAssistedClone, nil); !ok {
		t.Error("host-assisted clone must be supported")
	}
	other := &Class{Features: FeaturesOf("example.com/x", []PropertySet{{AccessModes: []string{ReadWriteMany}}})}
	if ok, _ := other.Supports(OpLiveMigration, []string{ReadWriteMany}); !ok {
		t.Error("RWX live migration on multi-node storage")
	}
	if ok, why := other.Supports(OpLiveMigration, []string{ReadWriteOnce}); ok || !strings.Contains(why, "ReadWriteMany") {
		t.Errorf("RWO live migration: %v %q", ok, why)
	}
}

// Scratch space (seed 8.18.18.2): the configured class if it exists, else
// the default class, else the claim's own; insecure registries and limits
// come from the HyperConverged.
func TestBuild_hyperConverged(t *testing.T) {
	yaml := hostpathBase + `---
apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata: {name: kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  scratchSpaceStorageClass: hostpath-retain
  storageImport: {insecureRegistries: ["registry.local:5000"]}
  resourceRequirements:
    storageWorkloads:
      limits: {cpu: 500m, memory: 2Gi}
      requests: {cpu: 250m, memory: 1Gi}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: reg, namespace: default}
spec:
  source: {registry: {url: "docker://registry.local:5000/disks/fedora:40"}}
  storage: {resources: {requests: {storage: 1Gi}}}
`
	st := build(t, yaml)
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	c := st.Claims["default/reg"]
	if c.ScratchClass != "hostpath-retain" || !c.Source.Insecure || c.Limits.CPUMillis != 500 || c.Limits.MemoryBytes != 2<<30 {
		t.Fatalf("claim %+v source %+v", c, c.Source)
	}
	st = build(t, strings.Replace(yaml, "scratchSpaceStorageClass: hostpath-retain", "scratchSpaceStorageClass: nope", 1))
	if c := st.Claims["default/reg"]; c.ScratchClass != "hostpath-provisioner" {
		t.Fatalf("fallback to the default class: %q", c.ScratchClass)
	}
}

// VMs placed elsewhere keep their claims off this node; a LiveMigrate VM on
// ReadWriteOnce storage is warned about (seed 8.18.1 note).
func TestBuild_placementAndEviction(t *testing.T) {
	other := strings.Replace(vm("far", "dv:fedora"), "    spec:\n      domain:", "    spec:\n      nodeSelector: {kubernetes.io/hostname: node02}\n      domain:", 1)
	st := build(t, hostpathBase+dvHTTP+other)
	if st.Claims["default/fedora"] != nil || st.Elsewhere["default/fedora"] == "" {
		t.Fatalf("claims %v elsewhere %v", st.Claims, st.Elsewhere)
	}
	lm := strings.Replace(vm("web", "dv:fedora"), "    spec:\n      domain:", "    spec:\n      evictionStrategy: LiveMigrate\n      domain:", 1)
	st = build(t, hostpathBase+dvHTTP+lm)
	d := findDiag(st.Diags, ErrLiveMigrateRWO)
	if d == nil || d.Severity != diag.Warning || d.Path != "spec.template.spec.evictionStrategy" {
		t.Fatalf("diags %v", st.Diags)
	}
}

// A Block DataVolume of the storage API on a repository without any
// StorageClass gets ReadWriteOnce in Block mode, as a Filesystem one does
// in Filesystem mode (CDI's registry-image-block-datavolume.yaml).
func TestBuild_blockWithoutClass(t *testing.T) {
	for _, mode := range []string{"Block", "Filesystem"} {
		st := build(t, `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: dv, namespace: default}
spec:
  source: {blank: {}}
  storage:
    volumeMode: `+mode+`
    resources: {requests: {storage: 1Gi}}
`)
		if st.Diags.HasErrors() {
			t.Fatalf("%s: %v", mode, st.Diags.Errors())
		}
		c := st.Claims["default/dv"]
		if c == nil || c.VolumeMode != mode || strings.Join(c.AccessModes, ",") != ReadWriteOnce {
			t.Fatalf("%s: claim %+v, want ReadWriteOnce in %s mode", mode, c, mode)
		}
	}
}
