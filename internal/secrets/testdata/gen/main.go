// Generates SOPS-encrypted Kubernetes Secrets with the real sops v3.13.3 Go
// API, as `sops --encrypt --age <recipient> --encrypted-regex '^(data|stringData)$'`
// (Flux's documented convention) would.
package main

import (
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/version"
)

func main() {
	// args: plain.yaml out.yaml keyfile(existing or new)
	var id *age.X25519Identity
	if b, err := os.ReadFile(os.Args[3]); err == nil {
		ids, err := age.ParseIdentities(bytesReader(b))
		must(err)
		id = ids[0].(*age.X25519Identity)
	} else {
		id, err = age.GenerateX25519Identity()
		must(err)
		must(os.WriteFile(os.Args[3], []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600))
	}
	plain, err := os.ReadFile(os.Args[1])
	must(err)
	store := common.StoreForFormat(formats.Yaml, config.NewStoresConfig())
	branches, err := store.LoadPlainFile(plain)
	must(err)
	mk, err := sopsage.MasterKeyFromRecipient(id.Recipient().String())
	must(err)
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups:      []sops.KeyGroup{{mk}},
		EncryptedRegex: os.Getenv("REGEX"),
		Version:        version.Version,
	}}
	if tree.Metadata.EncryptedRegex == "" {
		// The sops CLI's default when no rule is given.
		tree.Metadata.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	_ = keys.MasterKey(mk)
	dataKey, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		panic(fmt.Sprint(errs))
	}
	must(common.EncryptTree(common.EncryptTreeOpts{DataKey: dataKey, Tree: &tree, Cipher: aes.NewCipher()}))
	out, err := store.EmitEncryptedFile(tree)
	must(err)
	must(os.WriteFile(os.Args[2], out, 0o644))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
