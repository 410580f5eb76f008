package fleet

import (
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// armorPublic writes e's public key, armored, as `gpg --export -a` does.
func armorPublic(w io.Writer, e *openpgp.Entity) error {
	aw, err := armor.Encode(w, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.Serialize(aw); err != nil {
		return err
	}
	return aw.Close()
}
