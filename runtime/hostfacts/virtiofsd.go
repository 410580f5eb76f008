package hostfacts

import (
	"os"
	"path/filepath"
)

// virtiofsdPaths are where distributions install virtiofsd, preferred
// first: the Rust daemon (Debian 12's virtiofsd package, Fedora, RHEL),
// then QEMU's older C daemon (Debian 11's qemu-system-common).
var virtiofsdPaths = []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/libexec/qemu/virtiofsd"}

// Virtiofsd returns the host path of virtiofsd, the daemon libvirt starts
// for a virtiofs <filesystem>, looked up under root; "" when it is not
// installed (or not executable).
func Virtiofsd(root string) string {
	for _, p := range virtiofsdPaths {
		st, err := os.Stat(filepath.Join(root, p))
		if err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}
