package manifests

import (
	"encoding/base64"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	serialRe = regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`)
	// pciAddress is KubeVirt's DDDD:BB:SS.F (domain, bus, slot, function).
	pciAddress = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$`)
)

const (
	// KubeVirt's custom block size bounds: 512 bytes to 2 MiB, powers of 2.
	minBlockSize = 512
	maxBlockSize = 2 << 20
	maxSerial    = 256
	// cloudInitMaxLen is KubeVirt's limit for inline user and network data;
	// larger data belongs in a Secret.
	cloudInitMaxLen = 2048
)

func (v *validator) disks(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	dp := p + ".domain.devices.disks"
	volumes := map[string]bool{}
	volumeIndex := map[string]int{}
	for i, vol := range spec.Volumes {
		volumes[vol.Name] = true
		if _, dup := volumeIndex[vol.Name]; !dup {
			volumeIndex[vol.Name] = i
		}
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
		// A CD-ROM without a volume is an empty drive, which KubeVirt
		// allows with DeclarativeHotplugVolumes (on by default in HCO).
		if !volumes[d.Name] && d.CDRom == nil {
			v.failf(ip+".name", ErrDiskVolumeMissing, "%q", d.Name)
		}
		if count(d.Disk != nil, d.CDRom != nil, d.LUN != nil) > 1 {
			v.fail(ip, ErrDiskTargets)
		}
		if d.Disk != nil {
			v.bus(ip+".disk.bus", d.Disk.Bus)
			if d.Disk.PciAddress != "" {
				if d.Disk.Bus != kubevirtv1.DiskBusVirtio {
					v.failf(ip+".disk.pciAddress", ErrPCIAddressBus, "bus is %q", d.Disk.Bus)
				} else if !pciAddress.MatchString(d.Disk.PciAddress) {
					v.failf(ip+".disk.pciAddress", ErrPCIAddress, "got %q", d.Disk.PciAddress)
				}
			}
			if d.Disk.ReadOnly && d.Disk.Bus == kubevirtv1.DiskBusSATA {
				v.fail(ip+".disk.readonly", ErrSATAReadonly)
			}
		}
		if d.DedicatedIOThread != nil && *d.DedicatedIOThread && (d.Disk == nil || d.Disk.Bus != kubevirtv1.DiskBusVirtio) {
			v.fail(ip+".dedicatedIOThread", ErrIOThreadBus)
		}
		if d.LUN != nil {
			v.bus(ip+".lun.bus", d.LUN.Bus)
			if vi, ok := volumeIndex[d.Name]; ok {
				src := spec.Volumes[vi].VolumeSource
				if src.PersistentVolumeClaim == nil && src.DataVolume == nil {
					v.fail(ip+".lun", ErrLUNVolume)
				}
			}
		}
		if bs := d.BlockSize; bs != nil && bs.Custom != nil {
			v.blockSize(ip+".blockSize.custom", bs, d)
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

// blockSize checks a custom block size (KubeVirt's storage admitter).
func (v *validator) blockSize(p string, bs *kubevirtv1.BlockSize, d kubevirtv1.Disk) {
	c := bs.Custom
	if bs.MatchVolume != nil && on(bs.MatchVolume) {
		v.failf(p, ErrBlockSize, "custom sizes cannot be combined with matchVolume")
	}
	for _, f := range []struct {
		field string
		size  uint
	}{{"logical", c.Logical}, {"physical", c.Physical}} {
		switch {
		case f.size < minBlockSize:
			v.failf(p+"."+f.field, ErrBlockSize, "%d is less than the minimum %d", f.size, minBlockSize)
		case f.size > maxBlockSize:
			v.failf(p+"."+f.field, ErrBlockSize, "%d is greater than the maximum %d", f.size, maxBlockSize)
		case f.size&(f.size-1) != 0:
			v.failf(p+"."+f.field, ErrBlockSize, "%d is not a power of 2", f.size)
		}
	}
	if c.Logical > c.Physical {
		v.failf(p+".logical", ErrBlockSize, "logical size %d must not be greater than the physical size %d", c.Logical, c.Physical)
	}
	if d.Disk != nil && d.Disk.Bus == kubevirtv1.DiskBusSATA && c.Logical != minBlockSize {
		v.failf(p+".logical", ErrBlockSize, "logical size %d must be %d on sata", c.Logical, minBlockSize)
	}
	if g := c.DiscardGranularity; g != nil && c.Logical != 0 && *g%c.Logical != 0 {
		v.failf(p+".discardGranularity", ErrBlockSize, "%d is not a multiple of the logical size %d", *g, c.Logical)
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
	singleton := map[string]int{}
	for i, vol := range spec.Volumes {
		for _, kind := range []struct {
			name string
			set  bool
		}{
			{"serviceAccount", vol.ServiceAccount != nil},
			{"downwardMetrics", vol.DownwardMetrics != nil},
			{"memoryDump", vol.MemoryDump != nil},
		} {
			if !kind.set {
				continue
			}
			if j, dup := singleton[kind.name]; dup {
				v.failf(joinIndex(vp, i)+"."+kind.name, ErrVolumeSingleton, "%s: volumes[%d] is one already", kind.name, j)
			} else {
				singleton[kind.name] = i
			}
		}
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
				userData: ci.UserData, userDataBase64: ci.UserDataBase64, userDataRef: namedRef(ci.UserDataSecretRef),
				networkData: ci.NetworkData, networkDataBase64: ci.NetworkDataBase64, networkDataRef: namedRef(ci.NetworkDataSecretRef),
			})
		}
		if ci := src.CloudInitConfigDrive; ci != nil {
			v.cloudInit(ip+".cloudInitConfigDrive", cloudInitData{
				userData: ci.UserData, userDataBase64: ci.UserDataBase64, userDataRef: namedRef(ci.UserDataSecretRef),
				networkData: ci.NetworkData, networkDataBase64: ci.NetworkDataBase64, networkDataRef: namedRef(ci.NetworkDataSecretRef),
			})
		}
	}
}

// namedRef is KubeVirt's test for a secret reference that counts as a
// source: one with a name (an empty userDataSecretRef: {} is none).
func namedRef(r *corev1.LocalObjectReference) bool { return r != nil && r.Name != "" }

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
