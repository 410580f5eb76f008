package api

import (
	"errors"
	"testing"
	"time"
)

// A token starts uploads for five minutes, with ten seconds of leeway for
// clocks apart; a token of the future is no good either.
func TestUploadToken_lifetimeAndLeeway(t *testing.T) {
	var u uploadSigner
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := u.issue(at, "ns", "disk")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{-5 * time.Second, true},
		{-15 * time.Second, false},
		{UploadTokenLifetime + 5*time.Second, true},
		{UploadTokenLifetime + 11*time.Second, false},
		{time.Hour, false},
	} {
		claims, err := u.verify(at.Add(c.after), tok)
		if c.ok && (err != nil || claims.Name != "disk" || claims.Namespace != "ns") {
			t.Errorf("%s after issue: %v %+v", c.after, err, claims)
		}
		if !c.ok && !errors.Is(err, errTokenInvalid) {
			t.Errorf("%s after issue: %v, want refused", c.after, err)
		}
	}
}
