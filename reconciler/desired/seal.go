package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// seal hashes what the guest will see (the domain without metadata, plus the
// host artifacts behind its disks), writes the ownership element with that
// hash into the domain and returns the final XML. It is the last step of
// every rendering, so the hash always matches the XML.
func seal(dom *libvirtxml.Domain, artifacts []domain.Artifact, owner Owner) (xml, hash string, err error) {
	dom.Metadata = nil
	body, err := dom.Marshal()
	if err != nil {
		return "", "", err
	}
	arts, err := json.Marshal(artifacts)
	if err != nil {
		return "", "", fmt.Errorf("hashing artifacts: %w", err)
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
	xml, err = dom.Marshal()
	return xml, owner.SpecHash, err
}

// Pinning is the set of exclusive host CPUs allocated to a VM: one per vCPU,
// in vCPU order, and the emulator thread's when isolated.
type Pinning struct {
	VCPUs    []uint `json:"vcpus"`
	Emulator *uint  `json:"emulator,omitempty"`
}

// Pin returns a copy of vm whose domain pins each vCPU to its allocated host
// CPU (<cputune><vcpupin>), and the emulator thread when isolated
// (<emulatorpin>). The hash covers the pins: a new allocation redefines.
func Pin(vm *VM, p Pinning) (*VM, error) {
	if vm.Dedicated == nil || len(p.VCPUs) != vm.Dedicated.VCPUs {
		return nil, fmt.Errorf("%s: pinning of %d CPUs does not fit its %d dedicated vCPUs", vm.Object, len(p.VCPUs), vm.Dedicated.VCPUs)
	}
	return rework(vm, vm.Artifacts, func(dom *libvirtxml.Domain) error {
		if dom.CPUTune == nil {
			dom.CPUTune = &libvirtxml.DomainCPUTune{}
		}
		dom.CPUTune.VCPUPin = nil
		for i, cpu := range p.VCPUs {
			dom.CPUTune.VCPUPin = append(dom.CPUTune.VCPUPin, libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(i), CPUSet: strconv.FormatUint(uint64(cpu), 10)})
		}
		dom.CPUTune.EmulatorPin = nil
		if p.Emulator != nil {
			dom.CPUTune.EmulatorPin = &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: strconv.FormatUint(uint64(*p.Emulator), 10)}
		}
		return nil
	})
}

// rework returns a copy of vm whose domain edit changed, with artifacts, and
// re-seals it: the hash and ownership element always match the final XML.
func rework(vm *VM, artifacts []domain.Artifact, edit func(*libvirtxml.Domain) error) (*VM, error) {
	dom := &libvirtxml.Domain{}
	if err := dom.Unmarshal(vm.XML); err != nil {
		return nil, fmt.Errorf("%s: %w", vm.Object, err)
	}
	if err := edit(dom); err != nil {
		return nil, fmt.Errorf("%s: %w", vm.Object, err)
	}
	owner, ok := OwnerOf(vm.XML)
	if !ok {
		return nil, fmt.Errorf("%s: rendered domain carries no owner", vm.Object)
	}
	xml, hash, err := seal(dom, artifacts, owner)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vm.Object, err)
	}
	out := *vm
	out.XML, out.SpecHash, out.Artifacts = xml, hash, artifacts
	return &out, nil
}

// ClaimDisk is where the storage manager keeps a claim's disk.
type ClaimDisk struct {
	Path string
	// Block: a block device (<disk type='block'>), else a raw disk.img file.
	Block bool
}

// ResolveClaims returns a copy of vm whose claim disks point where the
// storage manager keeps them: a Filesystem claim's disk.img, or a Block
// claim's device as <disk type='block'>. Claims the lookup does not know keep
// their default path (the VM waits for it). The hash covers the result.
func ResolveClaims(vm *VM, lookup func(namespace, claim string) (ClaimDisk, bool)) (*VM, error) {
	found := map[string]ClaimDisk{}
	for _, a := range vm.Artifacts {
		if a.Kind != domain.Claim || a.Claim == "" {
			continue
		}
		if cd, ok := lookup(vm.Namespace, a.Claim); ok && (cd.Path != a.Path || cd.Block) {
			found[a.Volume] = cd
		}
	}
	if len(found) == 0 {
		return vm, nil
	}
	artifacts := slices.Clone(vm.Artifacts)
	for i, a := range artifacts {
		if cd, ok := found[a.Volume]; ok && a.Kind == domain.Claim {
			artifacts[i].Path = cd.Path
		}
	}
	return rework(vm, artifacts, func(dom *libvirtxml.Domain) error {
		if dom.Devices == nil {
			return nil
		}
		for i := range dom.Devices.Disks {
			d := &dom.Devices.Disks[i]
			if d.Alias == nil {
				continue
			}
			// KubeVirt disks share their volume's name; the converter aliases them ua-<name>.
			cd, ok := found[strings.TrimPrefix(d.Alias.Name, "ua-")]
			if !ok {
				continue
			}
			if cd.Block {
				d.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: cd.Path}}
			} else {
				d.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: cd.Path}}
			}
		}
		return nil
	})
}

// AssignedDevice is a host PCI device allocated to one request of a VM.
type AssignedDevice struct {
	Name     string `json:"name"`
	Resource string `json:"resource"`
	GPU      bool   `json:"gpu,omitempty"`
	// Address is the PCI address, DDDD:BB:SS.F.
	Address string `json:"address"`
}

// AttachHostDevices returns a copy of vm with one <hostdev> per assigned
// device: managed='no' because nodevirt (or the host's vfio.conf) binds the
// device to vfio-pci, as KubeVirt expects of permitted devices.
func AttachHostDevices(vm *VM, devs []AssignedDevice) (*VM, error) {
	if len(devs) == 0 {
		return vm, nil
	}
	return rework(vm, vm.Artifacts, func(dom *libvirtxml.Domain) error {
		if dom.Devices == nil {
			dom.Devices = &libvirtxml.DomainDeviceList{}
		}
		for _, d := range devs {
			var pciDomain, bus, slot, fn uint
			if _, err := fmt.Sscanf(d.Address, "%x:%x:%x.%x", &pciDomain, &bus, &slot, &fn); err != nil {
				return fmt.Errorf("device %s: PCI address %q: %w", d.Name, d.Address, err)
			}
			alias := "ua-hostdevice-" + d.Name
			if d.GPU {
				alias = "ua-gpu-" + d.Name
			}
			dom.Devices.Hostdevs = append(dom.Devices.Hostdevs, libvirtxml.DomainHostdev{
				Managed: "no",
				SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{
					Address: &libvirtxml.DomainAddressPCI{Domain: &pciDomain, Bus: &bus, Slot: &slot, Function: &fn},
				}},
				Alias: &libvirtxml.DomainAlias{Name: alias},
			})
		}
		return nil
	})
}
