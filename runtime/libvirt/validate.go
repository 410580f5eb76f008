package virt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrValidatorMissing means virt-xml-validate is not installed, so ValidateXML
// cannot check anything; callers decide whether that is fatal.
var ErrValidatorMissing = errors.New("virt-xml-validate is not installed (Debian package libvirt-clients; `make test` installs it)")

// validateTimeout bounds one virt-xml-validate run; loading the RNG schemas
// takes well under a second, so a hang means something is broken.
const validateTimeout = 30 * time.Second

// ValidateXML checks domain XML against libvirt's RNG schema with
// virt-xml-validate, without a connection. This catches what libvirt would
// otherwise drop silently (unknown elements) before anything is defined; it
// is for offline checks such as `nodevirt validate` and golden files, while
// Define validates again through libvirtd.
func (d *Driver) ValidateXML(domainXML string) error {
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		return ErrValidatorMissing
	}
	f, err := os.CreateTemp("", "nodevirt-domain-*.xml")
	if err != nil {
		return fmt.Errorf("validate domain XML: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.WriteString(domainXML); err != nil {
		_ = f.Close()
		return fmt.Errorf("validate domain XML: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("validate domain XML: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), validateTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, f.Name(), "domain")
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		// The output names the temp file; it means nothing to the caller.
		msg := strings.TrimSpace(strings.ReplaceAll(out.String(), f.Name(), "<domain>"))
		return fmt.Errorf("domain XML does not match libvirt's schema: %s: %w", msg, err)
	}
	return nil
}
