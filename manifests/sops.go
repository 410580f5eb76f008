package manifests

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ErrEncrypted marks a SOPS-encrypted document that could not be decrypted.
var ErrEncrypted = errors.New("SOPS-encrypted document")

// decrypt decrypts a SOPS-encrypted document in place before it is read,
// as Flux's kustomize-controller does before it applies one. It reports
// whether the document was encrypted.
func decrypt(root *yaml.Node, opt Options) (bool, error) {
	if !sopsEncrypted(root) {
		return false, nil
	}
	if opt.Decrypt == nil {
		return true, fmt.Errorf("%w: nodevirt has no age key to decrypt it; give the agent one with --sops-age-key-file", ErrEncrypted)
	}
	if err := opt.Decrypt(root); err != nil {
		return true, fmt.Errorf("%w: %w", ErrEncrypted, err)
	}
	return true, nil
}

// sopsEncrypted: a top-level "sops" mapping with a MAC is sops' metadata.
func sopsEncrypted(root *yaml.Node) bool {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k, v := root.Content[i], root.Content[i+1]; k.Value == "sops" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if v.Content[j].Value == "mac" {
					return true
				}
			}
		}
	}
	return false
}
