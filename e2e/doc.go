// Package e2e holds nodevirt's end-to-end tests, behind the e2e build tag: a
// real nodevirt binary against qemu:///system with real domains, real bare git
// repositories and real files. `make test` installs and starts what they need.
package e2e
