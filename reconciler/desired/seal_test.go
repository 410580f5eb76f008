package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// sealByTwoMarshals is seal as it was before it marshalled once: the body
// and the final XML each marshalled on their own. A domain's hash must not
// change with how it is computed, or every VM would restart.
func sealByTwoMarshals(dom *libvirtxml.Domain, artifacts []domain.Artifact, hot []domain.HotplugDisk, owner Owner) (string, string, error) {
	dom.Metadata = nil
	live := map[string]bool{}
	for _, h := range hot {
		live[h.Volume] = true
	}
	body, err := hashedBody(dom, live)
	if err != nil {
		return "", "", err
	}
	var cold []domain.Artifact
	for _, a := range artifacts {
		if !live[a.Volume] {
			cold = append(cold, a)
		}
	}
	arts, err := json.Marshal(cold)
	if err != nil {
		return "", "", err
	}
	sum := sha256.New()
	sum.Write([]byte(body))
	sum.Write(arts)
	owner.SpecHash = "sha256:" + hex.EncodeToString(sum.Sum(nil))[:32]
	meta, err := owner.Element()
	if err != nil {
		return "", "", err
	}
	dom.Metadata = meta
	xml, err := dom.Marshal()
	return xml, owner.SpecHash, err
}

// The one-marshal seal gives the same XML and hash as two marshals, for
// the seed fixtures, live and cold volumes, and the shapes that make it
// fall back: only unhashed devices, an alias that needs escaping, no
// devices at all.
func TestSeal_sameAsTwoMarshals(t *testing.T) {
	type input struct {
		name string
		xml  string
		arts []domain.Artifact
		hot  []domain.HotplugDisk
	}
	var inputs []input
	add := func(st *State) {
		for _, vm := range st.VMs {
			inputs = append(inputs, input{vm.DomainName, vm.XML, vm.Artifacts, vm.HotplugDisks})
		}
	}
	_, seed := build(t, filepath.Join("..", "..", "manifests", "testdata", "seed"))
	add(seed)
	live := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: db}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}, {name: data, disk: {bus: scsi}}, {name: logs, disk: {bus: scsi}}]
      volumes:
        - {name: root, dataVolume: {name: db-root}}
        - {name: data, dataVolume: {name: db-data, hotpluggable: true}}
        - {name: logs, dataVolume: {name: db-logs}}
`
	noHotplug := strings.Replace(strings.Replace(live, "name: db}", "name: plain}", 1), "        devices:\n", "        devices:\n          disableHotplug: true\n", 1)
	add(Build(manifests.Parse("vm.yaml", []byte(live+"---\n"+noHotplug), manifests.Options{}), "r1", testOptions))
	if len(inputs) < 12 {
		t.Fatalf("only %d domains rendered", len(inputs))
	}
	withLive := 0
	for _, in := range inputs {
		withLive += len(in.hot)
	}
	if withLive == 0 {
		t.Fatal("no domain has a live disk")
	}

	owner := Owner{Kind: "VirtualMachine", Namespace: "default", Name: "x", Revision: "main@sha1:0123"}
	check := func(name string, parse func() *libvirtxml.Domain, arts []domain.Artifact, hot []domain.HotplugDisk) {
		t.Helper()
		wantXML, wantHash, err := sealByTwoMarshals(parse(), arts, hot, owner)
		if err != nil {
			t.Fatal(err)
		}
		dom := parse()
		gotXML, gotHash, err := seal(dom, arts, hot, owner)
		if err != nil {
			t.Fatal(err)
		}
		if gotHash != wantHash || gotXML != wantXML {
			t.Errorf("%s: hash %s, want %s; XML equal: %v\n%s", name, gotHash, wantHash, gotXML == wantXML, gotXML)
		}
		if dom.Metadata == nil || !strings.Contains(dom.Metadata.XML, wantHash) {
			t.Errorf("%s: the domain's metadata does not carry the hash: %+v", name, dom.Metadata)
		}
	}
	for _, in := range inputs {
		parse := func() *libvirtxml.Domain {
			var d libvirtxml.Domain
			if err := d.Unmarshal(in.xml); err != nil {
				t.Fatal(err)
			}
			d.Metadata = nil
			return &d
		}
		check(in.name, parse, in.arts, in.hot)
		// Only the unhashed devices left: nothing remains in <devices>.
		check(in.name+" (only unhashed devices)", func() *libvirtxml.Domain {
			d := parse()
			var ctl []libvirtxml.DomainController
			for _, c := range d.Devices.Controllers {
				if domain.IsHotplugController(c) {
					ctl = append(ctl, c)
				}
			}
			d.Devices = &libvirtxml.DomainDeviceList{Controllers: ctl}
			return d
		}, in.arts, in.hot)
		check(in.name+" (no devices)", func() *libvirtxml.Domain {
			d := parse()
			d.Devices = nil
			return d
		}, in.arts, nil)
	}
	// A live disk whose alias is escaped in the XML.
	check("escaped alias", func() *libvirtxml.Domain {
		return &libvirtxml.Domain{Name: "esc", Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Alias: &libvirtxml.DomainAlias{Name: "ua-a&b"}},
				{Device: "disk", Alias: &libvirtxml.DomainAlias{Name: "ua-root"}},
			},
		}}
	}, nil, []domain.HotplugDisk{{Volume: "a&b"}})
}

// The reused encoder writes every domain as libvirtxml's Marshal does,
// the first one and those after it.
func TestMarshalDomain_sameAsMarshal(t *testing.T) {
	_, st := build(t, filepath.Join("..", "..", "manifests", "testdata", "seed"))
	if len(st.VMs) < 10 {
		t.Fatalf("only %d domains rendered", len(st.VMs))
	}
	for round := range 3 {
		for _, vm := range st.VMs {
			var d libvirtxml.Domain
			if err := d.Unmarshal(vm.XML); err != nil {
				t.Fatal(err)
			}
			want, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := marshalDomain(&d)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("round %d, %s: reused encoder wrote\n%s\nwant\n%s", round, vm.DomainName, got, want)
			}
		}
	}
}
