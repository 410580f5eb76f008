package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
)

// hostConfigView is render host's output: contents as text.
type hostConfigView struct {
	Revision         string                   `json:"revision"`
	Node             nodeconfig.Node          `json:"node"`
	Configs          []nodeconfig.Config      `json:"configs"`
	Files            []fileView               `json:"files"`
	Units            []unitView               `json:"units"`
	KernelArgs       []string                 `json:"kernelArguments"`
	KernelArgsAbsent []string                 `json:"kernelArgumentsAbsent,omitempty"`
	VFIO             nodeconfig.VFIO          `json:"vfio"`
	PCI              []nodeconfig.PCIResource `json:"pciResources,omitempty"`
	Labels           []nodeconfig.LabelCheck  `json:"selinuxLabels,omitempty"`
	HostPathDirs     []nodeconfig.HostPathDir `json:"hostPathDirs,omitempty"`
	Invalid          []string                 `json:"invalid,omitempty"`
	Diags            diag.List                `json:"diagnostics,omitempty"`
}

type fileView struct {
	Path  string `json:"path"`
	Mode  string `json:"mode"`
	Owner string `json:"owner"`
	// Contents is the file as text; binary files are base64 in ContentsBase64.
	Contents       string            `json:"contents,omitempty"`
	ContentsBase64 []byte            `json:"contentsBase64,omitempty"`
	Source         nodeconfig.Source `json:"source"`
}

type unitView struct {
	Name     string              `json:"name"`
	Enabled  *bool               `json:"enabled,omitempty"`
	Mask     *bool               `json:"mask,omitempty"`
	Contents *string             `json:"contents,omitempty"`
	Dropins  []nodeconfig.Dropin `json:"dropins,omitempty"`
	Source   nodeconfig.Source   `json:"source"`
}

func ownerString(f nodeconfig.File) string {
	u, g := "root", "root"
	switch {
	case f.User != "":
		u = f.User
	case f.UID != nil:
		u = strconv.Itoa(*f.UID)
	}
	switch {
	case f.Group != "":
		g = f.Group
	case f.GID != nil:
		g = strconv.Itoa(*f.GID)
	}
	return u + ":" + g
}

func viewHostConfig(rh *renderedHost) hostConfigView {
	h := rh.cfg
	v := hostConfigView{Revision: rh.revision, Node: h.Node, Configs: h.Configs, VFIO: h.VFIO, PCI: h.PCI, Labels: h.Labels,
		HostPathDirs: h.HostPathDirs, Invalid: h.Invalid, Diags: h.Diags, Files: []fileView{}, Units: []unitView{}, KernelArgs: h.KernelArgValues()}
	for _, f := range h.Files {
		fv := fileView{Path: f.Path, Mode: nodeconfig.ModeString(f.Mode), Owner: ownerString(f), Source: f.Source}
		if utf8.Valid(f.Contents) {
			fv.Contents = string(f.Contents)
		} else {
			fv.ContentsBase64 = f.Contents
		}
		v.Files = append(v.Files, fv)
	}
	for _, u := range h.Units {
		v.Units = append(v.Units, unitView{Name: u.Name, Enabled: u.Enabled, Mask: u.Mask, Contents: u.Contents, Dropins: u.Dropins, Source: u.Source})
	}
	for _, k := range h.KernelArgsAbsent {
		v.KernelArgsAbsent = append(v.KernelArgsAbsent, k.Value)
	}
	return v
}

func where(s nodeconfig.Source) string {
	out := s.Object
	if s.File != "" {
		out += " (" + s.File
		if s.Line > 0 {
			out += ":" + strconv.Itoa(s.Line)
		}
		out += ")"
	}
	if s.Path != "" {
		out += " " + s.Path
	}
	return out
}

func boolWord(b *bool, yes, no, unset string) string {
	if b == nil {
		return unset
	}
	if *b {
		return yes
	}
	return no
}

func printHostConfig(w io.Writer, format string, rh *renderedHost) error {
	v := viewHostConfig(rh)
	if format != "table" {
		return printData(w, format, v)
	}
	h := rh.cfg
	fmt.Fprintf(w, "Host configuration for node %s (roles %s) at %s\n", h.Node.Name, strings.Join(h.Node.Roles, ", "), rh.revision)
	applied := 0
	for _, c := range h.Configs {
		if c.Applies && !c.Invalid {
			applied++
		}
	}
	fmt.Fprintf(w, "%d of %d configs apply to this node.\n", applied, len(h.Configs))
	indent := func(s string) {
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			fmt.Fprintf(w, "    | %s\n", l)
		}
	}
	fmt.Fprintf(w, "\nFiles (%d):\n", len(v.Files))
	for _, f := range v.Files {
		fmt.Fprintf(w, "  %s  mode %s  owner %s  from %s\n", f.Path, f.Mode, f.Owner, where(f.Source))
		if f.ContentsBase64 != nil {
			fmt.Fprintf(w, "    | (%d bytes of binary data)\n", len(f.ContentsBase64))
		} else {
			indent(f.Contents)
		}
	}
	fmt.Fprintf(w, "\nUnits (%d):\n", len(h.Units))
	for _, u := range h.Units {
		state := boolWord(u.Enabled, "enabled", "disabled", "enablement unchanged")
		if u.Mask != nil && *u.Mask {
			state = "masked"
		}
		fmt.Fprintf(w, "  %s  %s  from %s\n", u.Name, state, where(u.Source))
		if u.Contents != nil {
			indent(*u.Contents)
		}
		for _, d := range u.Dropins {
			note := ""
			if d.Generated != "" {
				note = " (added by nodevirt: " + d.Generated + ")"
			}
			fmt.Fprintf(w, "    drop-in %s%s\n", d.Name, note)
			indent(d.Contents)
		}
	}
	fmt.Fprintf(w, "\nKernel arguments (%d):\n", len(h.KernelArgs))
	for _, k := range h.KernelArgs {
		fmt.Fprintf(w, "  %s  from %s\n", k.Value, where(k.Source))
	}
	for _, k := range h.KernelArgsAbsent {
		fmt.Fprintf(w, "  not %s  from %s\n", k.Value, where(k.Source))
	}
	if len(h.PCI) > 0 || len(h.VFIO.IDs) > 0 {
		fmt.Fprintf(w, "\nVFIO: ids %s; vfio-pci loaded at boot: %v; IOMMU: %s; generate: %v; bind at run time: %v\n",
			orNone(strings.Join(h.VFIO.IDs, ",")), h.VFIO.ModulesLoad, orNone(strings.Join(h.VFIO.IOMMU, " ")), h.VFIO.Generate, h.VFIO.Bind)
		for _, p := range h.PCI {
			ext := ""
			if p.External {
				ext = " (external device plugin)"
			}
			fmt.Fprintf(w, "  %s -> %s%s\n", p.Selector, p.ResourceName, ext)
		}
	}
	if len(h.Labels) > 0 {
		fmt.Fprintln(w, "\nSELinux labels checked:")
		for _, l := range h.Labels {
			fmt.Fprintf(w, "  %s  type %s  set by %s\n", l.Path, l.Type, l.Unit)
		}
	}
	for _, obj := range h.Invalid {
		fmt.Fprintf(w, "\nINVALID %s: not applied; what nodevirt applied from it earlier is kept.\n", obj)
	}
	if len(h.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(h.Diags))
		diag.Fprint(w, h.Diags, sourceText(rh.set.Tree, rh.dir))
	}
	return nil
}
