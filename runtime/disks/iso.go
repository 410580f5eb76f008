package disks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
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
	for name := range files {
		for _, part := range strings.Split(name, "/") {
			if len(part) > isoFileNameMax || !isoFileName.MatchString(part) {
				return fmt.Errorf("write ISO %s: file name %q cannot be stored unchanged in plain ISO 9660: "+
					"use at most %d lower-case letters, digits, '-' or '_' per path element, with at most one short extension", path, name, isoFileNameMax)
			}
		}
		names = append(names, name)
	}
	slices.Sort(names)

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
	// The sidecar is written last: if we crash in between, the digest does
	// not match and the next call rewrites the image.
	err = writeAtomic(sidecar, func(tmp string) error {
		return os.WriteFile(tmp, []byte(digest+"\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("write ISO %s: record digest: %w", path, err)
	}
	return nil
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
