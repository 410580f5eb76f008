package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// SOPS documents (github.com/getsops/sops, format version 3) encrypted for
// age recipients, decrypted as Flux's kustomize-controller decrypts them:
// with the age identities of a key file, before the document is decoded.
//
// This reads the format with filippo.io/age and the standard library rather
// than through github.com/getsops/sops/v3: that module's decryption cannot
// be imported without its key service, which links the AWS, Azure, Google
// Cloud, HashiCorp Vault and Huawei Cloud SDKs and gRPC (about 290 more
// packages than nodevirt has, a 64 MB binary for a program that only
// decrypts). Only age keys are read here; a document whose data key is
// sealed only for other key services is refused by name. The testdata were
// written by sops v3.13.3 itself (see testdata/README.md).

// ErrSOPS marks a SOPS document that cannot be decrypted.
var ErrSOPS = errors.New("cannot decrypt")

// DefaultUnencryptedSuffix is sops' rule when a document names none.
const defaultUnencryptedSuffix = "_unencrypted"

// Decryptor decrypts SOPS documents with the age identities of one key file.
type Decryptor struct {
	// KeyFile holds age identities, one AGE-SECRET-KEY-1… per line and
	// "#" comments: age-keygen's output, Flux's *.agekey, sops'
	// SOPS_AGE_KEY_FILE. It is read for each encrypted document, so a
	// repository without one needs no key and a rotated key is used at
	// the next pass.
	KeyFile string
}

// IsEncrypted reports whether root, a document's top-level mapping, carries
// SOPS metadata.
func IsEncrypted(root *yaml.Node) bool {
	_, meta := sopsEntry(root)
	return meta != nil && meta.Kind == yaml.MappingNode && mapValue(meta, "mac") != nil
}

// Decrypt decrypts the values of root in place, checks the document's MAC
// and removes its sops metadata. Errors name fields, never values.
func (d *Decryptor) Decrypt(root *yaml.Node) error {
	i, metaNode := sopsEntry(root)
	if metaNode == nil {
		return fmt.Errorf("%w: the document has no sops metadata", ErrSOPS)
	}
	var meta metadata
	if err := metaNode.Decode(&meta); err != nil {
		return fmt.Errorf("%w: sops metadata: %v", ErrSOPS, err)
	}
	rules, err := meta.rules()
	if err != nil {
		return err
	}
	key, err := d.dataKey(meta)
	if err != nil {
		return err
	}
	// The MAC covers the values of the document without its metadata.
	body := &yaml.Node{Kind: yaml.MappingNode, Content: append(append([]*yaml.Node{}, root.Content[:i]...), root.Content[i+2:]...)}
	w := walker{key: key, rules: rules, mac: sha512.New()}
	if meta.MACOnlyEncrypted {
		w.mac.Write(macOnlyEncryptedInit)
	}
	if err := w.walk(body, nil); err != nil {
		return err
	}
	stored, err := decryptValue(meta.MAC, key, meta.LastModified)
	if err != nil {
		return fmt.Errorf("%w: the document's MAC cannot be decrypted: %v", ErrSOPS, err)
	}
	if string(stored.text) != fmt.Sprintf("%X", w.mac.Sum(nil)) {
		return fmt.Errorf("%w: the document's MAC does not match its values: it was changed after it was encrypted", ErrSOPS)
	}
	root.Content = body.Content
	return nil
}

// sopsEntry finds the top-level "sops" key: its index and its value.
func sopsEntry(root *yaml.Node) (int, *yaml.Node) {
	if root == nil || root.Kind != yaml.MappingNode {
		return -1, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "sops" {
			return i, root.Content[i+1]
		}
	}
	return -1, nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// metadata is the part of the sops block nodevirt reads.
type metadata struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
		Enc       string `yaml:"enc"`
	} `yaml:"age"`
	KeyGroups               []yaml.Node `yaml:"key_groups"`
	KMS                     []yaml.Node `yaml:"kms"`
	GCPKMS                  []yaml.Node `yaml:"gcp_kms"`
	AzureKV                 []yaml.Node `yaml:"azure_kv"`
	Vault                   []yaml.Node `yaml:"hc_vault"`
	HCKMS                   []yaml.Node `yaml:"hckms"`
	PGP                     []yaml.Node `yaml:"pgp"`
	LastModified            string      `yaml:"lastmodified"`
	MAC                     string      `yaml:"mac"`
	UnencryptedSuffix       string      `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string      `yaml:"encrypted_suffix"`
	UnencryptedRegex        string      `yaml:"unencrypted_regex"`
	EncryptedRegex          string      `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string      `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string      `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool        `yaml:"mac_only_encrypted"`
}

// rules says which values sops encrypted: at most one rule, by default
// everything but keys ending in _unencrypted.
type rules struct {
	unencryptedSuffix, encryptedSuffix string
	unencryptedRegex, encryptedRegex   *regexp.Regexp
}

func (m metadata) rules() (rules, error) {
	if m.UnencryptedCommentRegex != "" || m.EncryptedCommentRegex != "" {
		return rules{}, fmt.Errorf("%w: encrypted_comment_regex and unencrypted_comment_regex are not supported; use encrypted_regex", ErrSOPS)
	}
	var r rules
	n := 0
	for _, s := range []string{m.UnencryptedSuffix, m.EncryptedSuffix, m.UnencryptedRegex, m.EncryptedRegex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return r, fmt.Errorf("%w: more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex", ErrSOPS)
	}
	r.unencryptedSuffix, r.encryptedSuffix = m.UnencryptedSuffix, m.EncryptedSuffix
	if n == 0 {
		r.unencryptedSuffix = defaultUnencryptedSuffix
	}
	var err error
	if m.UnencryptedRegex != "" {
		if r.unencryptedRegex, err = regexp.Compile(m.UnencryptedRegex); err != nil {
			return r, fmt.Errorf("%w: unencrypted_regex: %v", ErrSOPS, err)
		}
	}
	if m.EncryptedRegex != "" {
		if r.encryptedRegex, err = regexp.Compile(m.EncryptedRegex); err != nil {
			return r, fmt.Errorf("%w: encrypted_regex: %v", ErrSOPS, err)
		}
	}
	return r, nil
}

// encrypted is sops' shouldBeEncrypted for a value at path.
func (r rules) encrypted(path []string) bool {
	any := func(match func(string) bool) bool {
		for _, p := range path {
			if match(p) {
				return true
			}
		}
		return false
	}
	switch {
	case r.unencryptedSuffix != "":
		return !any(func(p string) bool { return strings.HasSuffix(p, r.unencryptedSuffix) })
	case r.encryptedSuffix != "":
		return any(func(p string) bool { return strings.HasSuffix(p, r.encryptedSuffix) })
	case r.unencryptedRegex != nil:
		return !any(r.unencryptedRegex.MatchString)
	case r.encryptedRegex != nil:
		return any(r.encryptedRegex.MatchString)
	}
	return true
}

// dataKey opens the document's data key with one of the age identities.
func (d *Decryptor) dataKey(m metadata) ([]byte, error) {
	if len(m.KeyGroups) > 0 {
		return nil, fmt.Errorf("%w: key_groups (Shamir secret sharing) are not supported; encrypt for age recipients directly", ErrSOPS)
	}
	if len(m.Age) == 0 {
		var others []string
		for name, keys := range map[string]int{"kms": len(m.KMS), "gcp_kms": len(m.GCPKMS), "azure_kv": len(m.AzureKV),
			"hc_vault": len(m.Vault), "hckms": len(m.HCKMS), "pgp": len(m.PGP)} {
			if keys > 0 {
				others = append(others, name)
			}
		}
		return nil, fmt.Errorf("%w: the data key is sealed for no age recipient (only %s); nodevirt decrypts with age keys, as Flux does with its .agekey", ErrSOPS, strings.Join(sortedStrings(others), ", "))
	}
	if d == nil || d.KeyFile == "" {
		return nil, fmt.Errorf("%w: the document is encrypted and no age key file is given (--sops-age-key-file or SOPS_AGE_KEY_FILE)", ErrSOPS)
	}
	ids, err := readIdentities(d.KeyFile)
	if err != nil {
		return nil, err
	}
	recipients := make([]string, 0, len(m.Age))
	for _, a := range m.Age {
		recipients = append(recipients, a.Recipient)
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(a.Enc)), ids...)
		if err != nil {
			continue
		}
		key, err := io.ReadAll(r)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("%w: the data key for age recipient %s is malformed", ErrSOPS, a.Recipient)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: no identity of %s opens the data key; the document is encrypted for %s", ErrSOPS, d.KeyFile, strings.Join(recipients, ", "))
}

func readIdentities(path string) ([]age.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: age key file (--sops-age-key-file): %v", ErrSOPS, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: age key file %s: %v", ErrSOPS, path, err)
	}
	return ids, nil
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// macOnlyEncryptedInit starts the MAC of a mac_only_encrypted document, so
// it never equals the MAC of the same values without the option (sops'
// MACOnlyEncryptedInitialization).
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb,
	0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// walker decrypts the leaves of a tree in document order, as sops walks it,
// and hashes their plaintext into the MAC.
type walker struct {
	key   []byte
	rules rules
	mac   hash.Hash
}

func (w *walker) walk(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("%w: %s: only string keys are supported", ErrSOPS, strings.Join(path, "."))
			}
			if err := w.walk(n.Content[i+1], append(path[:len(path):len(path)], k.Value)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		// sops gives list items their list's path.
		for _, item := range n.Content {
			if err := w.walk(item, path); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return w.walk(n.Alias, path)
	case yaml.ScalarNode:
		return w.leaf(n, path)
	}
	return nil
}

func (w *walker) leaf(n *yaml.Node, path []string) error {
	encrypted := w.rules.encrypted(path)
	if !encrypted {
		if w.mac != nil {
			b, ok, err := plainBytes(n)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrSOPS, strings.Join(path, "."), err)
			}
			if ok {
				w.mac.Write(b)
			}
		}
		return nil
	}
	if n.ShortTag() == "!!null" {
		return nil // sops leaves null alone
	}
	if n.Value == "" {
		// sops writes an empty string unencrypted; it is in the MAC as such.
		return nil
	}
	v, err := decryptValue(n.Value, w.key, strings.Join(path, ":")+":")
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSOPS, strings.Join(path, "."), err)
	}
	w.mac.Write(v.text)
	n.Value, n.Tag, n.Style = string(v.value), v.tag, 0
	if v.tag == "!!str" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return nil
}

// plainBytes is what sops hashes for an unencrypted scalar: the value as
// go.yaml.in/yaml/v3 decodes it, written back by sops' ToBytes (Python's
// True/False for booleans, shortest decimals for floats). Nulls are left
// out of the MAC.
func plainBytes(n *yaml.Node) ([]byte, bool, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, false, err
	}
	switch x := v.(type) {
	case nil:
		return nil, false, nil
	case string:
		return []byte(x), true, nil
	case int:
		return []byte(strconv.Itoa(x)), true, nil
	case float64:
		return []byte(strconv.FormatFloat(x, 'f', -1, 64)), true, nil
	case bool:
		if x {
			return []byte("True"), true, nil
		}
		return []byte("False"), true, nil
	case time.Time:
		b, err := x.MarshalText()
		return b, true, err
	}
	return nil, false, fmt.Errorf("a value of type %T cannot be hashed as sops does", v)
}

var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// plain is one decrypted value: its text for the MAC, its YAML form.
type plain struct {
	text  []byte
	value []byte
	tag   string
}

// decryptValue opens one ENC[AES256_GCM,…] value; the path (or, for the
// MAC, the lastmodified time) is the additional authenticated data.
func decryptValue(s string, key []byte, aad string) (plain, error) {
	m := encValue.FindStringSubmatch(s)
	if m == nil {
		return plain{}, errors.New("not a sops-encrypted value")
	}
	var parts [3][]byte
	for i := range parts {
		b, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil {
			return plain{}, fmt.Errorf("malformed encrypted value: %v", err)
		}
		parts[i] = b
	}
	data, iv, tag := parts[0], parts[1], parts[2]
	block, err := aes.NewCipher(key)
	if err != nil {
		return plain{}, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return plain{}, err
	}
	out, err := gcm.Open(nil, iv, append(data, tag...), []byte(aad))
	if err != nil {
		return plain{}, errors.New("cannot be decrypted with the document's data key (wrong key, or the value was moved or changed)")
	}
	p := plain{text: out, value: out}
	switch m[4] {
	case "str", "bytes":
		p.tag = "!!str"
	case "int":
		if _, err := strconv.Atoi(string(out)); err != nil {
			return plain{}, errors.New("decrypted int is not an integer")
		}
		p.tag = "!!int"
	case "float":
		f, err := strconv.ParseFloat(string(out), 64)
		if err != nil {
			return plain{}, errors.New("decrypted float is not a number")
		}
		p.tag, p.text = "!!float", []byte(strconv.FormatFloat(f, 'f', -1, 64))
	case "bool":
		b, err := strconv.ParseBool(string(out))
		if err != nil {
			return plain{}, errors.New("decrypted bool is not a boolean")
		}
		p.tag, p.value, p.text = "!!bool", []byte(strconv.FormatBool(b)), []byte("False")
		if b {
			p.text = []byte("True")
		}
	case "time":
		var t time.Time
		if err := t.UnmarshalText(out); err != nil {
			return plain{}, errors.New("decrypted time is not a time")
		}
		p.tag = "!!timestamp"
		if p.text, err = t.MarshalText(); err != nil {
			return plain{}, err
		}
	default:
		return plain{}, fmt.Errorf("unknown value type %q", m[4])
	}
	return p, nil
}
