package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/api"
)

// buildVersion is what this binary was built from, as the Go toolchain
// recorded it: the module version (a tag, or "(devel)" for a local build),
// the VCS revision and whether the tree had uncommitted changes.
type buildVersion struct {
	Version string `json:"version"`
	// Listen is where a running agent serves its HTTPS API ("" for none).
	Listen    string `json:"listen,omitempty"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print what this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			v := readBuildVersion()
			// The running agent's, as kubectl version shows the server's.
			var agentV *buildVersion
			if c, err := o.runningAgent(cmd.Context()); err == nil && c != nil {
				var av buildVersion
				if err := c.Get(cmd.Context(), api.Prefix+"/version", &av); err == nil {
					agentV = &av
				}
			}
			if o.output != "table" {
				if agentV == nil {
					return printData(cmd.OutOrStdout(), o.output, v)
				}
				return printData(cmd.OutOrStdout(), o.output, struct {
					buildVersion
					Agent *buildVersion `json:"agent"`
				}{v, agentV})
			}
			printVersion(cmd.OutOrStdout(), "nodevirt", v)
			if agentV != nil {
				printVersion(cmd.OutOrStdout(), "agent", *agentV)
			}
			return nil
		},
	}
}

func printVersion(w io.Writer, what string, v buildVersion) {
	rev := v.Revision
	if rev == "" {
		rev = "unknown"
	}
	if v.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "%s %s\nrevision: %s\nbuilt with: %s %s\n", what, v.Version, rev, v.GoVersion, v.Platform)
	if v.Listen != "" {
		fmt.Fprintf(w, "serving: %s\n", v.Listen)
	}
}
