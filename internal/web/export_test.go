package web

import (
	"net/http"
	"time"
)

// WithDescribeTimeout shortens h's bound on Describe, so the test of a hung
// description does not wait the full timeout.
func WithDescribeTimeout(h http.Handler, d time.Duration) http.Handler {
	h.(*handler).describeTimeout = d
	return h
}
