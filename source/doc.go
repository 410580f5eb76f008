// Package source owns nodevirt's desired-state input: it turns a git
// repository or a local directory into a Snapshot — a revision,
// a directory of manifests and a content digest — and tells the agent when a
// new one may be available.
//
// The rest of the agent consumes Snapshots only; it never imports git. A Git
// source publishes every commit as an immutable directory,
// <WorkDir>/rev-<hash>, renamed into place only once it is complete, so a
// reader never sees a half-written checkout, and it keeps the previous
// revision on disk so a host that loses its network keeps its last good
// state. A Dir source hashes the live directory and offers an fsnotify
// watcher that fires once per settled change.
//
// The "manifest tree" that a Digest covers is the same for both kinds: every
// regular file and symlink below the snapshot's directory, except
//   - anything inside a directory whose name starts with "." (.git, .github),
//   - editor temporaries (*~, .*.swp, .*.swo, .*.swx, *.tmp, 4913, .#*, #*#),
//   - sockets, devices and pipes,
//   - paths matched by the repository root's .sourceignore (gitignore syntax).
//
// Symlinks follow one rule everywhere (internal/srctree): one whose target
// stays inside the source tree (Snapshot.Root) and ends at a file is read as
// that file; one that leaves the tree, or names a directory, is refused by
// name by whatever would read it, and nothing behind it is read. The Digest
// covers each link's text and the content it leads to, so retargeting a link
// is a new revision. A Git checkout keeps committed symlinks as they are, so
// a link to /etc/shadow is refused, not silently dropped.
//
// A Git source accepts a commit only after two checks, so a revision it
// refuses is never published and the previous one stays current: with
// Options.Verify the commit (or tag) must be signed by a trusted OpenPGP or
// SSH key, and a branch tip must descend from the last accepted commit
// unless Options.AllowRewind or a RewindMarker in the tip confirms the
// rewind. Fetch then returns a *RefusedError together with the last
// accepted Snapshot.
//
// A Git source deletes those entries from the published directory, so what
// the reconciler walks is exactly what the Digest covers; for a Dir source,
// which belongs to the operator and is never modified, Snapshot.Files lists
// the same set.
//
// This package must not import reconciler, manifests or runtime: imports
// point from source towards them, never back.
//
// Importing github.com/fluxcd/pkg/git/gogit has a process-wide side effect:
// its init function overwrites go-git's global
// transport.UnsupportedCapabilities (leaving only ThinPack), so that a first
// clone from v2-only servers such as Azure DevOps works. Every other go-git
// user linked into the binary sees that change. It is also why the Git
// source always clones afresh instead of fetching into an existing
// repository.
package source
