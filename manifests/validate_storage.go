package manifests

import (
	"encoding/base64"
	"regexp"

	kubevirtv1 "kubevirt.io/api/core/v1"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	serialRe = regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`)
)

const (
	maxSerial = 256
	// cloudInitMaxLen is KubeVirt's limit for inline user and network data;
	// larger data belongs in a Secret.
	cloudInitMaxLen = 2048
)

func (v *validator) disks(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	dp := p + ".domain.devices.disks"
	volumes := map[string]bool{}
	for _, vol := range spec.Volumes {
		volumes[vol.Name] = true
	}
	first := map[string]int{}
	for i, d := range spec.Domain.Devices.Disks {
		ip := joinIndex(dp, i)
		if j, dup := first[d.Name]; dup {
			v.failf(ip+".name", ErrDiskNameDuplicate, "%q is also disks[%d]", d.Name, j)
		} else {
			first[d.Name] = i
		}
		if len(d.Name) > 63 || !dnsLabel.MatchString(d.Name) {
			v.failf(ip+".name", ErrDiskName, "got %q", d.Name)
		}
		if !volumes[d.Name] {
			v.failf(ip+".name", ErrDiskVolumeMissing, "%q", d.Name)
		}
		if count(d.Disk != nil, d.CDRom != nil, d.LUN != nil) > 1 {
			v.fail(ip, ErrDiskTargets)
		}
		if d.Disk != nil {
			v.bus(ip+".disk.bus", d.Disk.Bus)
		}
		if d.LUN != nil {
			v.bus(ip+".lun.bus", d.LUN.Bus)
		}
		if d.CDRom != nil {
			v.bus(ip+".cdrom.bus", d.CDRom.Bus)
			if d.CDRom.Bus == kubevirtv1.DiskBusVirtio {
				v.fail(ip+".cdrom.bus", ErrCDROMVirtio)
			}
		}
		switch d.Cache {
		case "", kubevirtv1.CacheNone, kubevirtv1.CacheWriteThrough, kubevirtv1.CacheWriteBack:
		default:
			v.failf(ip+".cache", ErrDiskCache, "got %q", d.Cache)
		}
		switch d.IO {
		case "", kubevirtv1.IONative, kubevirtv1.IOThreads:
		default:
			v.failf(ip+".io", ErrDiskIO, "got %q", d.IO)
		}
		if ep := d.ErrorPolicy; ep != nil {
			switch *ep {
			case "stop", "ignore", "report", "enospace":
			default:
				v.failf(ip+".errorPolicy", ErrDiskErrorPolicy, "got %q", *ep)
			}
		}
		if d.Serial != "" && (len(d.Serial) > maxSerial || !serialRe.MatchString(d.Serial)) {
			v.fail(ip+".serial", ErrDiskSerial)
		}
	}
}

func (v *validator) bus(path string, bus kubevirtv1.DiskBus) {
	switch bus {
	case "", kubevirtv1.DiskBusVirtio, kubevirtv1.DiskBusSATA, kubevirtv1.DiskBusSCSI, kubevirtv1.DiskBusUSB:
	default:
		v.failf(path, ErrDiskBus, "got %q", bus)
	}
}

func (v *validator) volumes(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	vp := p + ".volumes"
	first := map[string]int{}
	for i, vol := range spec.Volumes {
		ip := joinIndex(vp, i)
		if j, dup := first[vol.Name]; dup {
			v.failf(ip+".name", ErrVolumeNameDuplicate, "%q is also volumes[%d]", vol.Name, j)
		} else {
			first[vol.Name] = i
		}
		if n := countSet(vol.VolumeSource); n != 1 {
			v.failf(ip, ErrVolumeSource, "%d set", n)
		}
		src := vol.VolumeSource
		if cd := src.ContainerDisk; cd != nil && cd.Image == "" {
			v.fail(ip+".containerDisk.image", ErrContainerDiskImage)
		}
		if ed := src.EmptyDisk; ed != nil && ed.Capacity.Sign() <= 0 {
			v.fail(ip+".emptyDisk.capacity", ErrEmptyDiskCapacity)
		}
		if hd := src.HostDisk; hd != nil {
			if hd.Path == "" {
				v.fail(ip+".hostDisk.path", ErrHostDiskPath)
			}
			switch hd.Type {
			case kubevirtv1.HostDiskExists:
				if !hd.Capacity.IsZero() {
					v.fail(ip+".hostDisk.capacity", ErrHostDiskCapacity)
				}
			case kubevirtv1.HostDiskExistsOrCreate:
			default:
				v.failf(ip+".hostDisk.type", ErrHostDiskType, "got %q", hd.Type)
			}
		}
		if dv := src.DataVolume; dv != nil && dv.Name == "" {
			v.fail(ip+".dataVolume.name", ErrDataVolumeName)
		}
		if ci := src.CloudInitNoCloud; ci != nil {
			v.cloudInit(ip+".cloudInitNoCloud", cloudInitData{
				userData: ci.UserData, userDataBase64: ci.UserDataBase64, userDataRef: ci.UserDataSecretRef != nil,
				networkData: ci.NetworkData, networkDataBase64: ci.NetworkDataBase64, networkDataRef: ci.NetworkDataSecretRef != nil,
			})
		}
		if ci := src.CloudInitConfigDrive; ci != nil {
			v.cloudInit(ip+".cloudInitConfigDrive", cloudInitData{
				userData: ci.UserData, userDataBase64: ci.UserDataBase64, userDataRef: ci.UserDataSecretRef != nil,
				networkData: ci.NetworkData, networkDataBase64: ci.NetworkDataBase64, networkDataRef: ci.NetworkDataSecretRef != nil,
			})
		}
	}
}

// cloudInitData is what NoCloud and ConfigDrive sources have in common.
type cloudInitData struct {
	userData, userDataBase64       string
	userDataRef                    bool
	networkData, networkDataBase64 string
	networkDataRef                 bool
}

func (v *validator) cloudInit(p string, ci cloudInitData) {
	user := count(ci.userData != "", ci.userDataBase64 != "", ci.userDataRef)
	network := count(ci.networkData != "", ci.networkDataBase64 != "", ci.networkDataRef)
	if user == 0 && network == 0 {
		v.fail(p, ErrCloudInitNoData)
	}
	if user > 1 {
		v.failf(p, ErrCloudInitSources, "user data")
	}
	if network > 1 {
		v.failf(p, ErrCloudInitSources, "network data")
	}
	for _, f := range []struct {
		field, data string
		base64      bool
	}{
		{"userData", ci.userData, false},
		{"userDataBase64", ci.userDataBase64, true},
		{"networkData", ci.networkData, false},
		{"networkDataBase64", ci.networkDataBase64, true},
	} {
		data := f.data
		if f.base64 && data != "" {
			raw, err := base64.StdEncoding.DecodeString(data)
			if err != nil {
				v.failf(p+"."+f.field, ErrCloudInitBase64, "%s", err)
				continue
			}
			data = string(raw)
		}
		if len(data) > cloudInitMaxLen {
			v.failf(p+"."+f.field, ErrCloudInitTooLarge, "%d bytes", len(data))
		}
	}
}

// bootOrder checks that boot orders are positive and unique across disks and
// interfaces, which share libvirt's one <boot order> number space.
func (v *validator) bootOrder(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	first := map[uint]string{}
	check := func(path string, order *uint) {
		switch {
		case order == nil:
		case *order == 0:
			v.fail(path, ErrBootOrderZero)
		case first[*order] != "":
			v.failf(path, ErrBootOrderDuplicate, "%d is already used by %s", *order, first[*order])
		default:
			first[*order] = path
		}
	}
	for i, d := range spec.Domain.Devices.Disks {
		check(joinIndex(p+".domain.devices.disks", i)+".bootOrder", d.BootOrder)
	}
	for i, iface := range spec.Domain.Devices.Interfaces {
		check(joinIndex(p+".domain.devices.interfaces", i)+".bootOrder", iface.BootOrder)
	}
}
