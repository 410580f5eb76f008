package token

import (
	"bytes"
	"testing"
	"time"
)

// parse accepts exactly the texts sign makes with the key, and nothing
// else: whatever it accepts re-signs to the same text.
func FuzzParse(f *testing.F) {
	key := bytes.Repeat([]byte{7}, keySize)
	good := sign(key, claims{id: "abcdefgh2345", expires: time.Unix(1900000000, 0)})
	for _, s := range []string{good, good[:len(good)-1], "nvt_abcdefgh2345.1900000000.", "nvt_..", "nvt_abcdefgh2345.-1." + good[len(good)-macLen:], ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parse(key, s)
		if err != nil {
			if err != ErrInvalid {
				t.Fatalf("parse(%q) = %v, want ErrInvalid", s, err)
			}
			return
		}
		if again := sign(key, c); again != s {
			t.Fatalf("parse accepted %q, which signs as %q", s, again)
		}
		if !validID(c.id) || c.expires.Unix() <= 0 {
			t.Fatalf("parse accepted claims %+v", c)
		}
	})
}
