package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// validationReport is `validate -o json|yaml`.
type validationReport struct {
	Revision string `json:"revision"`
	// Objects and Files count what the source holds.
	Objects     int       `json:"objects"`
	Files       int       `json:"files"`
	Diagnostics diag.List `json:"diagnostics"`
}

func newValidateCmd(o *options) *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Decode and validate every manifest of the source; report all errors at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			oc, err := o.openConfig(true, agent.Stages{}, false)
			if err != nil {
				return err
			}
			oc.ReportDifferences = true
			oc.DiagnosticsOnly = true
			e, err := o.open(cmd.Context(), oc)
			if err != nil {
				return err
			}
			defer e.Close()
			snap, node, err := e.load(cmd.Context())
			if err != nil {
				return err
			}
			set, st := node.Set, node.VMs
			diags := st.Diags
			if o.output != "table" {
				if err := o.printObject(cmd.OutOrStdout(), kindValidationReport, validationReport{
					Revision: st.Revision, Objects: len(set.Objects), Files: set.Files, Diagnostics: diags,
				}); err != nil {
					return err
				}
			} else {
				diag.Fprint(cmd.ErrOrStderr(), diags, sourceText(snap.Root(), snap.Dir))
			}
			// Differences from KubeVirt describe the host, not the
			// manifest: nothing to fix, so --strict does not fail on them.
			bad := diags.HasErrors() || (strict && slices.ContainsFunc(diags, func(d diag.Diagnostic) bool { return !errors.Is(d, domain.ErrDiffers) }))
			if bad {
				return exitCode(1)
			}
			if o.output == "table" {
				fmt.Fprintf(cmd.OutOrStdout(), "%d objects in %d files are valid (%s)\n", len(set.Objects), set.Files, st.Revision)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "fail on warnings too")
	return cmd
}
