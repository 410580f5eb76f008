package vm

import (
	"context"
	"time"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Hypervisor is what the reconciler needs from libvirt.
type Hypervisor interface {
	Domains(ctx context.Context) ([]hv.Domain, error)
	Define(ctx context.Context, xml string) error
	Start(ctx context.Context, name string) error
	Shutdown(ctx context.Context, name string, grace time.Duration) error
	Destroy(ctx context.Context, name string) error
	Undefine(ctx context.Context, name string) error
	// Pause suspends a running domain's vCPUs; Resume lets it run again.
	// Either leaves a domain already in that state alone.
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
}

// EventSource is the optional ability to stream lifecycle events.
type EventSource interface {
	Events(ctx context.Context) (<-chan hv.Event, error)
}

// CPUComparer is the optional ability to check a guest CPU against the host
// (libvirt's hypervisor CPU comparison); nil error means compatible.
type CPUComparer interface {
	CompareCPU(ctx context.Context, arch, virtType, cpuXML string) error
}

// Disks prepares the host files a domain's disks refer to.
type Disks interface {
	EnsureQcow2(ctx context.Context, path string, size int64) error
	EnsureRaw(ctx context.Context, path string, size int64) error
	EnsureSeedISO(ctx context.Context, path, label string, files map[string][]byte) error
	EnsureOverlay(ctx context.Context, path, backing, backingFormat string) error
	ResolveImage(ctx context.Context, ref string) (path, format string, err error)
	EnsureKernelBoot(ctx context.Context, ref, dir, kernelPath, initrdPath string) error
	RemoveAll(ctx context.Context, dir string) error
	Exists(path string) bool
}

// KV is the embedded state store (bbolt in production).
type KV interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, val []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, val []byte) error) error
}
