package main

import (
	"strings"
	"testing"
)

// A directory source is read as its digest covers it: what .sourceignore
// names (a playbook beside the manifests, say) is not loaded as a manifest,
// and the rest still is.
func TestValidate_directorySourceHonoursSourceignore(t *testing.T) {
	src := t.TempDir()
	write(t, src, "vms/web.yaml", "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: web}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        devices: {}\n")
	write(t, src, "ansible/site.yml", "- name: a play\n  hosts: all\n  tasks: []\n")
	write(t, src, "notes.yaml", "- not a manifest\n")
	if out, errOut, code := run(t, "validate", "--source", src); code == 0 || !strings.Contains(out+errOut, "ansible/site.yml") {
		t.Fatalf("without .sourceignore the playbook must be read as a manifest and refused: exit %d\n%s%s", code, out, errOut)
	}
	write(t, src, ".sourceignore", "# not manifests\nansible/\nnotes.yaml\n")
	out, errOut, code := run(t, "validate", "--strict", "--source", src)
	if code != 0 || !strings.Contains(out, "1 objects in 1 files") {
		t.Fatalf("validate with .sourceignore: exit %d\n%s%s", code, out, errOut)
	}
}
