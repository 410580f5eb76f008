package agent

import (
	"context"
	"errors"

	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
	"github.com/nodevirt/nodevirt/runtime/importer"
	"github.com/nodevirt/nodevirt/runtime/loop"
	"github.com/nodevirt/nodevirt/runtime/pci"
)

// The runtime drivers behind the reconcilers' interfaces: the reconcilers
// declare what they need and never import a driver, so the translation
// lives here, with the wiring.

// PCIDevices is runtime/pci under root behind host.Devices. run executes
// modprobe and the like for Bind; nil suits a caller that only lists.
func PCIDevices(root string, run hostfs.Runner) host.Devices {
	return pciDevices{pci.New(root, run)}
}

// pciDevices adapts runtime/pci to the reconciler's Devices.
type pciDevices struct{ s *pci.Sysfs }

func (p pciDevices) List() ([]host.Device, error) {
	devs, err := p.s.List()
	if err != nil {
		return nil, err
	}
	out := make([]host.Device, len(devs))
	for i, d := range devs {
		out[i] = host.Device{Address: d.Address, Vendor: d.Vendor, Device: d.Device, Class: d.Class, Driver: d.Driver, IOMMUGroup: d.IOMMUGroup, NUMANode: d.NUMANode}
	}
	return out, nil
}

func (p pciDevices) Bind(ctx context.Context, addr, driver string) error {
	return p.s.Bind(ctx, addr, driver)
}

func (p pciDevices) Release(ctx context.Context, addr string) error { return p.s.Release(ctx, addr) }

// importerAdapter is runtime/importer behind storage.Importer.
type importerAdapter struct {
	im *importer.Importer
	// pull fetches a moved volume's data from the node that held it.
	pull func(ctx context.Context, r storage.ImportRequest) error
}

func (a importerAdapter) Import(ctx context.Context, r storage.ImportRequest, progress func(float64)) (storage.ImportResult, error) {
	if r.Kind == storage.SourcePeer {
		if a.pull == nil {
			return storage.ImportResult{}, errors.New("this agent pulls no moved volumes")
		}
		if err := a.pull(ctx, r); err != nil {
			return storage.ImportResult{}, err
		}
		progress(100)
		return storage.ImportResult{Format: "raw"}, nil
	}
	kind := map[string]importer.SourceKind{
		storage.SourceHTTP: importer.HTTP, storage.SourceRegistry: importer.Registry, storage.SourceBlank: importer.Blank,
		storage.SourcePVC: importer.Clone, storage.SourceUpload: importer.Upload,
	}[r.Kind]
	res, err := a.im.Import(ctx, importer.Request{
		Source: importer.Source{Kind: kind, URL: r.URL, CA: r.CA, Username: r.Username, Password: r.Password,
			Headers: r.Headers, Checksum: r.Checksum, Insecure: r.Insecure, Architecture: r.Architecture, Path: r.SourcePath,
			Reader: r.Reader, Size: r.ReaderSize},
		Target:   importer.Target{Path: r.Target, Block: r.Block, Size: r.Size, Preallocate: r.Preallocate},
		Scratch:  r.Scratch,
		Limits:   importer.Limits{CPUMillis: r.Limits.CPUMillis, MemoryBytes: r.Limits.MemoryBytes},
		Progress: progress,
		Received: r.Received,
	})
	return storage.ImportResult{Format: res.Format, Compression: res.Compression, VirtualSize: res.VirtualSize,
		Transferred: res.Transferred, Scratch: res.Scratch, Preallocation: res.Preallocation, Clone: res.Clone, Limits: res.Limits}, err
}

// loopAdapter is runtime/loop behind storage.Loops.
type loopAdapter struct{ l *loop.Loops }

func (a loopAdapter) AttachAt(dev, backing string) error {
	return a.l.AttachAt(dev, backing, loop.Options{})
}
func (a loopAdapter) Backing(dev string) (string, bool, error) { return a.l.Backing(dev) }
func (a loopAdapter) Find(backing string) ([]string, error)    { return a.l.Find(backing) }
func (a loopAdapter) Detach(dev string) error                  { return a.l.Detach(dev) }
