package importer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const mib = 1 << 20

// Every content type of the seed's CDI matrix over http and https, with basic
// auth and a custom CA: the disk is raw, holds the image's bytes, is grown to
// the target size, and scratch space is used exactly where the matrix says.
func TestImport_httpMatrix(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	qcow := qcow2Of(t, raw)
	iso := isoImage(t)
	plain := newImageServer(t, false)
	secure := newImageServer(t, true)
	secure.user, secure.pass = "importer", "s3cret"

	type tc struct {
		name, file  string
		data        []byte
		tls         bool
		wantFormat  string
		wantComp    string
		wantScratch bool
		want        []byte
	}
	cases := []tc{
		{"http qcow2", "d.qcow2", qcow, false, FormatQcow2, "", false, raw},
		{"http qcow2.gz", "d.qcow2.gz", gz(t, qcow), false, FormatQcow2, Gzip, true, raw},
		{"http qcow2.xz", "d.qcow2.xz", xzData(t, qcow), false, FormatQcow2, XZ, true, raw},
		{"http raw", "d.raw", raw, false, FormatRaw, "", false, raw},
		{"http raw.gz", "d.raw.gz", gz(t, raw), false, FormatRaw, Gzip, false, raw},
		{"http raw.xz", "d.raw.xz", xzData(t, raw), false, FormatRaw, XZ, false, raw},
		{"http iso", "d.iso", iso, false, FormatISO, "", false, iso},
		{"https ca auth qcow2", "d.qcow2", qcow, true, FormatQcow2, "", true, raw},
		{"https ca auth raw.xz", "d.raw.xz", xzData(t, raw), true, FormatRaw, XZ, false, raw},
		{"https ca auth raw.gz", "d.raw.gz", gz(t, raw), true, FormatRaw, Gzip, false, raw},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			scratch := filepath.Join(t.TempDir(), "scratch")
			src := Source{Kind: HTTP}
			if c.tls {
				src.URL = secure.put(c.file, c.data)
				src.CA = secure.caPEM()
				src.Username, src.Password = "importer", "s3cret"
			} else {
				src.URL = plain.put(c.file, c.data)
			}
			var mu sync.Mutex
			var seen []float64
			target := filepath.Join(dir, "disk.img")
			res, err := New(Config{}).Import(context.Background(), Request{
				Source: src, Target: Target{Path: target, Size: 8 * mib}, Scratch: scratch,
				Progress: func(p float64) { mu.Lock(); seen = append(seen, p); mu.Unlock() },
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != c.wantFormat || res.Compression != c.wantComp {
				t.Errorf("format %q compression %q, want %q %q", res.Format, res.Compression, c.wantFormat, c.wantComp)
			}
			if (res.Scratch != "") != c.wantScratch {
				t.Errorf("scratch used: %q, want %v (seed matrix)", res.Scratch, c.wantScratch)
			}
			st, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != 8*mib {
				t.Errorf("disk is %d bytes, want %d", st.Size(), 8*mib)
			}
			if got := readN(t, target, len(c.want)); !bytes.Equal(got, c.want) {
				t.Errorf("disk content differs from the image")
			}
			noLeftovers(t, dir, "disk.img")
			if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
				t.Errorf("scratch space not emptied: %v", entries)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 || seen[len(seen)-1] != 100 {
				t.Errorf("progress %v does not end at 100", seen)
			}
			for i := 1; i < len(seen); i++ {
				if seen[i] < seen[i-1] {
					t.Errorf("progress went back: %v", seen)
					break
				}
			}
			if out, err := exec.Command("qemu-img", "info", "--output=json", target).Output(); err != nil || !strings.Contains(string(out), `"format": "raw"`) {
				t.Errorf("qemu-img info: %v %s", err, out)
			}
		})
	}
}

// Bad input fails with a clear, typed reason and leaves nothing under the
// target's name.
func TestImport_badInput(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	plain := newImageServer(t, false)
	secure := newImageServer(t, true)
	secure.user, secure.pass = "importer", "s3cret"
	qcowBig := func() []byte {
		dir := t.TempDir()
		p := filepath.Join(dir, "big.qcow2")
		if msg, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, msg)
		}
		b, _ := os.ReadFile(p)
		return b
	}()
	qcowBacking := func() []byte {
		dir := t.TempDir()
		base := filepath.Join(dir, "base.raw")
		_ = os.WriteFile(base, raw, 0o644)
		p := filepath.Join(dir, "overlay.qcow2")
		if msg, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", p).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, msg)
		}
		b, _ := os.ReadFile(p)
		return b
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/gone.raw"
	ln.Close()

	for _, c := range []struct {
		name    string
		src     Source
		size    int64
		want    error
		message string
	}{
		{"wrong credentials", Source{Kind: HTTP, URL: secure.put("a.raw", raw), CA: secure.caPEM(), Username: "importer", Password: "nope"}, 8 * mib, ErrUnauthorized, "401"},
		{"no credentials", Source{Kind: HTTP, URL: secure.put("a.raw", raw), CA: secure.caPEM()}, 8 * mib, ErrUnauthorized, "set secretRef"},
		{"unknown CA", Source{Kind: HTTP, URL: secure.put("a.raw", raw), Username: "importer", Password: "s3cret"}, 8 * mib, ErrUnreachable, "certificate"},
		{"not found", Source{Kind: HTTP, URL: plain.URL + "/missing.raw"}, 8 * mib, ErrNotFound, "404"},
		{"unreachable", Source{Kind: HTTP, URL: closed}, 8 * mib, ErrUnreachable, "connection refused"},
		{"bad checksum", Source{Kind: HTTP, URL: plain.put("c.raw", raw), Checksum: "sha256:" + strings.Repeat("0", 64)}, 8 * mib, ErrChecksum, "checksum mismatch"},
		{"raw too large", Source{Kind: HTTP, URL: plain.put("b.raw.gz", gz(t, raw))}, 2 * mib, ErrTooSmall, "larger than the reported available storage"},
		{"qcow2 too large", Source{Kind: HTTP, URL: plain.put("big.qcow2", qcowBig)}, 32 * mib, ErrTooSmall, "Virtual image size 67108864 is larger than the reported available storage 33554432"},
		{"qcow2 with a backing file", Source{Kind: HTTP, URL: plain.put("ov.qcow2", qcowBacking)}, 8 * mib, ErrFormat, "backing file"},
		{"corrupt gzip", Source{Kind: HTTP, URL: plain.put("bad.gz", append(gz(t, raw)[:100], make([]byte, 64)...))}, 8 * mib, ErrFormat, "gz data is corrupt"},
		{"zstd", Source{Kind: HTTP, URL: plain.put("z.zst", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, raw[:100]...))}, 8 * mib, ErrUnsupported, "zstd"},
		{"not a URL", Source{Kind: HTTP, URL: "ftp://example.invalid/x"}, 8 * mib, nil, "want an http:// or https:// URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "disk.img")
			_, err := New(Config{}).Import(context.Background(), Request{Source: c.src, Target: Target{Path: target, Size: c.size}})
			if err == nil {
				t.Fatal("import succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v is not %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q lacks %q", err, c.message)
			}
			noLeftovers(t, dir)
		})
	}
}

// A good checksum passes; a leftover of an interrupted import is removed.
func TestImport_checksumAndLeftovers(t *testing.T) {
	raw := rawImage(4 * mib)
	srv := newImageServer(t, false)
	dir := t.TempDir()
	target := filepath.Join(dir, "disk.img")
	for _, p := range Leftovers(target) {
		writeFile(t, dir, filepath.Base(p), []byte("half-written"))
	}
	_, err := New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: HTTP, URL: srv.put("d.raw", raw), Checksum: "sha256:" + sha256Hex(raw)},
		Target: Target{Path: target, Size: 4 * mib},
	})
	if err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, dir, "disk.img")
}

// A cancelled import (the agent stopping) leaves no disk behind, only the
// bytes downloaded so far to resume from.
func TestImport_cancelled(t *testing.T) {
	srv := newImageServer(t, false)
	srv.rate = 2 * mib
	url := srv.put("slow.raw", rawImage(8*mib))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	go func() {
		<-started
		cancel()
	}()
	_, err := New(Config{}).Import(ctx, Request{
		Source: Source{Kind: HTTP, URL: url}, Target: Target{Path: filepath.Join(dir, "disk.img"), Size: 8 * mib},
		Progress: func(p float64) {
			select {
			case started <- struct{}{}:
			default:
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	data, meta := DownloadNames(filepath.Join(dir, "disk.img"))
	noLeftovers(t, dir, filepath.Base(data), filepath.Base(meta))
}

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// Blank disks are sparse; preallocation allocates them with fallocate, or
// by writing zeros where fallocate is not available.
func TestImport_blankAndPreallocation(t *testing.T) {
	for _, c := range []struct {
		name        string
		prealloc    bool
		forceFull   bool
		wantMethod  string
		wantAllocAt int64
	}{
		{"sparse", false, false, "", 0},
		{"fallocate", true, false, "fallocate", 16 * mib},
		{"full", true, true, "full", 16 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			forceFullPreallocation = c.forceFull
			defer func() { forceFullPreallocation = false }()
			target := filepath.Join(t.TempDir(), "disk.img")
			res, err := New(Config{}).Import(context.Background(), Request{
				Source: Source{Kind: Blank}, Target: Target{Path: target, Size: 16 * mib, Preallocate: c.prealloc},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Preallocation != c.wantMethod {
				t.Errorf("preallocation %q, want %q", res.Preallocation, c.wantMethod)
			}
			got := allocated(t, target)
			if c.wantAllocAt == 0 && got > mib {
				t.Errorf("blank disk has %d bytes allocated; want sparse", got)
			}
			if c.wantAllocAt > 0 && got < c.wantAllocAt {
				t.Errorf("preallocated disk has %d bytes allocated, want %d", got, c.wantAllocAt)
			}
		})
	}
}

// Preallocation also applies to imported images.
func TestImport_preallocatedImport(t *testing.T) {
	srv := newImageServer(t, false)
	target := filepath.Join(t.TempDir(), "disk.img")
	res, err := New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: HTTP, URL: srv.put("d.raw.gz", gz(t, rawImage(4*mib)))},
		Target: Target{Path: target, Size: 8 * mib, Preallocate: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Preallocation == "" || allocated(t, target) < 8*mib {
		t.Fatalf("preallocation %q, %d bytes allocated", res.Preallocation, allocated(t, target))
	}
}

// A clone copies the source and grows to the target; a smaller target is
// refused.
func TestImport_cloneCopy(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, dir, "src.img", rawImage(4*mib))
	target := filepath.Join(dir, "dst", "disk.img")
	res, err := New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: Clone, Path: src}, Target: Target{Path: target, Size: 6 * mib, Preallocate: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clone == "" || res.Preallocation != "" {
		t.Errorf("clone %q preallocation %q (preallocation is ignored for clones)", res.Clone, res.Preallocation)
	}
	if got := readN(t, target, 4*mib); !bytes.Equal(got, rawImage(4*mib)) {
		t.Error("clone differs from its source")
	}
	if st, _ := os.Stat(target); st.Size() != 6*mib {
		t.Errorf("clone is %d bytes, want %d", st.Size(), 6*mib)
	}
	_, err = New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: Clone, Path: src}, Target: Target{Path: filepath.Join(dir, "small", "disk.img"), Size: 2 * mib},
	})
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "smaller than the source") {
		t.Fatalf("small clone target: %v", err)
	}
}

// An uploaded qcow2 is staged in scratch space and converted like a
// download.
func TestImport_upload(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	qcow := qcow2Of(t, raw)
	dir := t.TempDir()
	scratch := filepath.Join(t.TempDir(), "scratch")
	target := filepath.Join(dir, "disk.img")
	res, err := New(Config{}).Import(context.Background(), Request{
		Source:  Source{Kind: Upload, Reader: bytes.NewReader(gz(t, qcow)), Size: -1},
		Target:  Target{Path: target, Size: 4 * mib},
		Scratch: scratch,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scratch == "" || res.Format != FormatQcow2 || res.Compression != Gzip {
		t.Errorf("result %+v", res)
	}
	if !bytes.Equal(readN(t, target, 4*mib), raw) {
		t.Error("uploaded disk differs")
	}
	noLeftovers(t, dir, "disk.img")
}

// Limits are enforced through a child cgroup v2 where the host offers the
// controllers, and reported as not enforced otherwise: never silently.
func TestImport_limitsReported(t *testing.T) {
	requireQemuImg(t)
	srv := newImageServer(t, false)
	res, err := New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: HTTP, URL: srv.put("d.qcow2", qcow2Of(t, rawImage(2*mib)))},
		Target: Target{Path: filepath.Join(t.TempDir(), "disk.img"), Size: 4 * mib},
		Limits: Limits{CPUMillis: 500, MemoryBytes: 512 * mib},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Limits, "limits enforced in cgroup ") && !strings.HasPrefix(res.Limits, "limits not enforced: ") {
		t.Fatalf("limits note %q", res.Limits)
	}
	t.Logf("on this host: %s", res.Limits)
}

// The cgroup files written for a limit, on a fake cgroup v2 tree.
func TestCgroup_childWritesLimits(t *testing.T) {
	root := t.TempDir()
	self := t.TempDir()
	writeFile(t, self, "cgroup", []byte("0::/agent\n"))
	parent := filepath.Join(root, "agent")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, parent, "cgroup.controllers", []byte("cpuset cpu io memory pids\n"))
	writeFile(t, parent, "cgroup.subtree_control", nil)
	h := detectCgroup(root, self)
	if h.problem != "" {
		t.Fatal(h.problem)
	}
	cg, note := h.child(Limits{CPUMillis: 500, MemoryBytes: 2 << 30})
	if cg == nil {
		t.Fatal(note)
	}
	defer cg.remove()
	if !strings.Contains(note, "cpu.max 50000 100000") || !strings.Contains(note, "memory.max 2147483648") {
		t.Errorf("note %q", note)
	}
	for file, want := range map[string]string{"cpu.max": "50000 100000", "memory.max": "2147483648"} {
		if b, _ := os.ReadFile(filepath.Join(cg.dir, file)); string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); string(b) != "+cpu +memory" {
		t.Errorf("subtree_control %q", b)
	}
	// Missing controllers are named.
	writeFile(t, parent, "cgroup.controllers", []byte("hugetlb\n"))
	h = detectCgroup(root, self)
	if cg, note := h.child(Limits{CPUMillis: 500}); cg != nil || !strings.Contains(note, "does not offer the cpu controller") {
		t.Errorf("without controllers: %v %q", cg, note)
	}
}

func TestDetection(t *testing.T) {
	iso := isoImage(t)
	for _, c := range []struct {
		head       []byte
		comp, form string
	}{
		{[]byte("QFI\xfb\x00\x00\x00\x03"), "", FormatQcow2},
		{gz(t, []byte("x")), Gzip, FormatRaw},
		{xzData(t, []byte("x")), XZ, FormatRaw},
		{iso, "", FormatISO},
		{[]byte("KDMV"), "", FormatVMDK},
		{make([]byte, 512), "", FormatRaw},
	} {
		comp, err := Compression(c.head)
		if err != nil || comp != c.comp {
			t.Errorf("Compression(%q…) = %q, %v", c.head[:4], comp, err)
		}
		if comp == "" {
			if f := Format(c.head); f != c.form {
				t.Errorf("Format(%q…) = %q, want %q", c.head[:4], f, c.form)
			}
		}
	}
}

// The seed's CDI support matrix: which imports need scratch space.
func TestNeedsScratch(t *testing.T) {
	for _, c := range []struct {
		kind      SourceKind
		https, ca bool
		format    string
		comp      string
		want      bool
	}{
		{HTTP, false, false, FormatQcow2, "", false},
		{HTTP, false, false, FormatQcow2, Gzip, true},
		{HTTP, false, false, FormatQcow2, XZ, true},
		{HTTP, true, false, FormatQcow2, "", false},
		{HTTP, true, true, FormatQcow2, "", true},
		{HTTP, false, false, FormatRaw, "", false},
		{HTTP, false, false, FormatRaw, Gzip, false},
		{HTTP, true, true, FormatRaw, XZ, false},
		{Registry, false, false, FormatRaw, "", true},
		{Registry, false, false, FormatQcow2, "", true},
		{Upload, false, false, FormatRaw, "", false},
		{Upload, false, false, FormatRaw, XZ, false},
		{Upload, false, false, FormatQcow2, XZ, true},
	} {
		if got := NeedsScratch(c.kind, c.https, c.ca, c.format, c.comp); got != c.want {
			t.Errorf("NeedsScratch(%s https=%v ca=%v %s %q) = %v, want %v", c.kind, c.https, c.ca, c.format, c.comp, got, c.want)
		}
	}
}

func TestMain(m *testing.M) {
	// Tests must never wait on a network they do not own.
	os.Setenv("NO_PROXY", "*")
	os.Unsetenv("HTTP_PROXY")
	os.Unsetenv("HTTPS_PROXY")
	code := m.Run()
	os.Exit(code)
}

// Both xz decoders: the xz program (when installed) and the Go one; a
// truncated stream is an error, never a short disk.
func TestImport_xzDecoders(t *testing.T) {
	raw := rawImage(4 * mib)
	srv := newImageServer(t, false)
	good := srv.put("d.raw.xz", xzData(t, raw))
	full := xzData(t, raw)
	bad := srv.put("t.raw.xz", full[:len(full)/2])
	big := srv.put("big.raw.xz", xzData(t, rawImage(8*mib)))
	for _, dec := range []string{"", "-"} {
		name := map[string]string{"": "program", "-": "go"}[dec]
		t.Run(name, func(t *testing.T) {
			im := New(Config{XZ: dec})
			dir := t.TempDir()
			target := filepath.Join(dir, "disk.img")
			if _, err := im.Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: good}, Target: Target{Path: target, Size: 4 * mib}}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readN(t, target, 4*mib), raw) {
				t.Fatal("content differs")
			}
			_ = os.Remove(target)
			_, err := im.Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: bad}, Target: Target{Path: target, Size: 4 * mib}})
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "xz data is corrupt") {
				t.Fatalf("truncated: %v", err)
			}
			_, err = im.Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: big}, Target: Target{Path: target, Size: 4 * mib}})
			if !errors.Is(err, ErrTooSmall) {
				t.Fatalf("too large: %v", err)
			}
			noLeftovers(t, dir)
		})
	}
}
