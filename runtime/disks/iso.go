package disks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kdomanski/iso9660"
)

var (
	// isoFileName is what kdomanski/iso9660 stores unchanged: it writes plain
	// ISO 9660 without Rock Ridge or Joliet and lower-cases and mangles any
	// other name, which Linux would then show to the guest under a different
	// name than cloud-init looks for ("user-data", "meta-data",
	// "network-config", "vendor-data" all pass). The length limit is the
	// library's: 30 characters minus the ";1" version suffix.
	isoFileName = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]{1,8})?$`)
	isoLabel    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

const isoFileNameMax = 28

// EnsureSeedISO writes a cloud-init seed image: ISO 9660 at path with volume
// label label ("cidata" for NoCloud, "config-2" for ConfigDrive) holding
// files; a name with slashes ("openstack/latest/user_data") is a path inside
// the image, its directories created as needed. The
// image is rewritten only when label or files differ from the last write,
// tracked by a sidecar "<path>.sha256" with a digest of the inputs: the
// image's own bytes differ on every build (they carry a creation time), so
// they cannot be compared.
func (s *Store) EnsureSeedISO(ctx context.Context, path, label string, files map[string][]byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write ISO %s: %w", path, err)
	}
	if !isoLabel.MatchString(label) {
		return fmt.Errorf("write ISO %s: volume label %q must be 1-32 letters, digits, '-' or '_'", path, label)
	}
	names := make([]string, 0, len(files))
	plain := true
	for name := range files {
		for _, part := range strings.Split(name, "/") {
			if part == "" || part == "." || part == ".." || strings.ContainsRune(part, 0) {
				return fmt.Errorf("write ISO %s: file name %q has an empty, '.' or '..' element", path, name)
			}
			if len(part) > isoFileNameMax || !isoFileName.MatchString(part) {
				plain = false
			}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	// Names plain ISO 9660 cannot hold (upper case, several dots, long
	// extensions: ConfigMap keys such as Caddyfile or app.properties) need
	// Rock Ridge and Joliet, which KubeVirt writes with xorrisofs; so
	// does nodevirt, when it is installed.
	xorrisofs := ""
	if !plain {
		bin, err := exec.LookPath("xorrisofs")
		if err != nil {
			for _, name := range names {
				for _, part := range strings.Split(name, "/") {
					if len(part) > isoFileNameMax || !isoFileName.MatchString(part) {
						return fmt.Errorf("write ISO %s: file name %q cannot be stored unchanged in plain ISO 9660 "+
							"(at most %d lower-case letters, digits, '-' or '_' per path element, with at most one short extension); "+
							"install xorriso for Rock Ridge names, or rename the key", path, name, isoFileNameMax)
					}
				}
			}
		}
		xorrisofs = bin
	}

	clean, err := s.inBase(path)
	if err != nil {
		return fmt.Errorf("write ISO: %w", err)
	}
	sidecar := clean + ".sha256"
	digest := isoDigest(label, names, files)
	if s.Exists(clean) {
		old, err := os.ReadFile(sidecar)
		if err == nil && strings.TrimSpace(string(old)) == digest {
			return nil
		}
		if err != nil && !isNotExist(err) {
			return fmt.Errorf("write ISO %s: %w", path, err)
		}
	}

	if xorrisofs != "" {
		if err := writeRockRidge(ctx, xorrisofs, clean, label, names, files); err != nil {
			return fmt.Errorf("write ISO %s: %w", path, err)
		}
		return writeDigest(path, sidecar, digest)
	}
	w, err := iso9660.NewWriter()
	if err != nil {
		return fmt.Errorf("write ISO %s: %w", path, err)
	}
	// The library stages files in a temporary directory of its own (under
	// os.TempDir); Cleanup removes it.
	defer func() { _ = w.Cleanup() }()
	for _, name := range names {
		if err := w.AddFile(bytes.NewReader(files[name]), name); err != nil {
			return fmt.Errorf("write ISO %s: add %s: %w", path, name, err)
		}
	}
	err = writeAtomic(clean, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		if err := w.WriteTo(f, label); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("write ISO %s: %w", path, err)
	}
	return writeDigest(path, sidecar, digest)
}

// writeDigest records the inputs of the image just written. The sidecar is
// written last: if we crash in between, the digest does not match and the
// next call rewrites the image.
func writeDigest(path, sidecar, digest string) error {
	err := writeAtomic(sidecar, func(tmp string) error {
		return os.WriteFile(tmp, []byte(digest+"\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("write ISO %s: record digest: %w", path, err)
	}
	return nil
}

// writeRockRidge writes the image with xorrisofs, as KubeVirt does: the
// files are staged in a private directory beside the image (inside the
// store's base, removed afterwards) and written with Rock Ridge and Joliet
// names.
func writeRockRidge(ctx context.Context, bin, clean, label string, names []string, files map[string][]byte) error {
	if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(filepath.Dir(clean), ".iso-stage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for _, name := range names {
		p := filepath.Join(stage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o600); err != nil {
			return err
		}
	}
	return writeAtomic(clean, func(tmp string) error {
		cmd := exec.CommandContext(ctx, bin, "-quiet", "-output", tmp, "-volid", label, "-joliet", "-rock", stage)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("xorrisofs: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// isoDigest hashes the inputs with length prefixes, so that no two different
// inputs can produce the same byte stream. The leading version string changes
// whenever the ISO layout this package writes changes, forcing a rewrite.
func isoDigest(label string, names []string, files map[string][]byte) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("nodevirt-nocloud-iso-v1"))
	field([]byte(label))
	for _, name := range names {
		field([]byte(name))
		field(files[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}
