// Package e2e holds nodevirt's end-to-end tests, behind the e2e build tag: a
// real nodevirt binary against qemu:///system with real domains, real bare git
// repositories and real files. `make test` installs and starts what they need.
// The one exception, upstream_test.go, renders the published manifests of
// testdata/upstream without libvirt, so `go test ./...` runs it too.
package e2e
