package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodevirt/nodevirt/internal/pathelem"
)

// ErrNotFound means the secrets directory has no entry for a reference.
var ErrNotFound = errors.New("not found in the secrets directory")

// Dir reads Secrets and ConfigMaps kept outside git, laid out as Kubernetes
// mounts one: a file per key under <Dir>/<namespace>/<name>/ (accessKeyId
// and secretKey for an endpoint secret, any *.crt or *.pem for a CA bundle,
// userdata for cloud-init, autounattend.xml for sysprep...).
type Dir struct{ Dir string }

// Read returns the keys of namespace/name.
func (s Dir) Read(namespace, name string) (map[string][]byte, error) {
	dir, err := pathelem.Join(s.Dir, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secret %s/%s: %w (%s)", namespace, name, ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		// Kubernetes' atomic writer keeps ..data and friends beside the keys.
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
		}
		out[e.Name()] = b
	}
	return out, nil
}
