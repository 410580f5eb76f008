// Package token issues and checks the agent API's bearer tokens. A token
// carries its id and expiry under an HMAC of a key only the agent's state
// directory holds, so a forged or edited token is refused before any
// lookup; the records (name, expiry, revocation) live in a file the CLI and
// the running agent share, each seeing the other's changes.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Why Verify refused a token; test with errors.Is.
var (
	// ErrInvalid is a malformed token, a wrong MAC, or a token this state
	// directory never issued (or whose record is gone).
	ErrInvalid = errors.New("invalid token")
	ErrExpired = errors.New("token expired")
	ErrRevoked = errors.New("token revoked")
	// ErrNotFound is Revoke's answer for an id or name no record has.
	ErrNotFound = errors.New("no such token")
)

const (
	prefix = "nvt_"
	// idLen base32 characters are 60 random bits: ids never collide in
	// practice, and the MAC, not the id, is what keeps tokens unguessable.
	idLen = 12
	// macLen is the unpadded base64url length of an HMAC-SHA256.
	macLen = 43
	// maxLen bounds what parse looks at: an Authorization header can be
	// as long as a client likes.
	maxLen = 128
)

var macEncoding = base64.RawURLEncoding

// claims are what a token's MAC covers.
type claims struct {
	id      string
	expires time.Time // whole seconds
}

// payload is the signed part of the token text: nvt_<id>.<expiry, Unix
// seconds>. The MAC is over these exact bytes, so any other spelling of
// the same claims fails.
func (c claims) payload() string {
	return prefix + c.id + "." + strconv.FormatInt(c.expires.Unix(), 10)
}

func sign(key []byte, c claims) string {
	p := c.payload()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(p))
	return p + "." + macEncoding.EncodeToString(m.Sum(nil))
}

// parse checks a token's shape and MAC and returns its claims. Every
// failure is ErrInvalid; the MAC is compared in constant time.
func parse(key []byte, s string) (claims, error) {
	if len(s) > maxLen {
		return claims{}, ErrInvalid
	}
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return claims{}, ErrInvalid
	}
	id, rest, ok := strings.Cut(rest, ".")
	if !ok || !validID(id) {
		return claims{}, ErrInvalid
	}
	exp, mac, ok := strings.Cut(rest, ".")
	if !ok || len(mac) != macLen {
		return claims{}, ErrInvalid
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs <= 0 {
		return claims{}, ErrInvalid
	}
	c := claims{id: id, expires: time.Unix(secs, 0).UTC()}
	if subtle.ConstantTimeCompare([]byte(sign(key, c)), []byte(s)) != 1 {
		return claims{}, ErrInvalid
	}
	return c, nil
}

// newID is idLen random lowercase base32 characters.
func newID() string { return strings.ToLower(rand.Text()[:idLen]) }

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '2' || r > '7') {
			return false
		}
	}
	return true
}
