// Package secrets reads the Secrets and ConfigMaps nodevirt keeps outside
// the repository (Dir: the --secrets-dir tree, laid out as the kubelet
// mounts them) and decrypts the ones kept in it encrypted with SOPS and age
// keys, as Flux's kustomize-controller does (Decryptor).
//
// Values read here go to the disk images and importers that need them and
// nowhere else: errors name namespaces, names, keys and paths, never
// content.
package secrets
