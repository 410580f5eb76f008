package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/token"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

func newCertsCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "The agent API's certificate authority and serving certificate",
	}
	cmd.AddCommand(newCertsStatusCmd(o), newCertsIssueClientCmd(o))
	return cmd
}

func newCertsStatusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the CA, the serving certificate and when each rotates",
		Long: "Show the CA, the serving certificate and the older CAs still trusted, with their validity and\n" +
			"next rotation, read from <state>/pki without changing anything. The rotation deadlines follow the\n" +
			"source's HyperConverged spec.certConfig (HCO's defaults when the source has none or cannot be read).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			// A running agent knows what the files cannot say: a forced
			// rotation, the lifetimes it rotates by now.
			c, err := o.runningAgent(cmd.Context())
			if err != nil {
				return err
			}
			if c != nil {
				var st pki.Status
				if err := c.Get(cmd.Context(), api.Prefix+"/certificates", &st); err == nil {
					return o.printCerts(cmd.OutOrStdout(), st)
				} else if apiErr := (*api.APIError)(nil); !errors.As(err, &apiErr) || apiErr.Code != http.StatusNotFound {
					return err
				}
				// The agent serves no HTTPS (--listen ''): read the files.
			}
			// No certificates is the answer whatever the lifetimes: say it
			// before fetching the source.
			if _, err := pki.ReadStatus(pkiDir(o.stateDir), pki.DefaultLifetimes()); err != nil {
				return err
			}
			l, err := o.sourceLifetimes(cmd.Context())
			if err != nil {
				l = pki.DefaultLifetimes()
				fmt.Fprintf(cmd.ErrOrStderr(), "note: the certConfig of the source is unknown (%v); deadlines use HCO's default lifetimes\n", err)
			}
			st, err := pki.ReadStatus(pkiDir(o.stateDir), l)
			if err != nil {
				return err
			}
			return o.printCerts(cmd.OutOrStdout(), st)
		},
	}
}

func (o *options) printCerts(w io.Writer, st pki.Status) error {
	if o.output != "table" {
		return printData(w, o.output, st)
	}
	printCertStatus(w, st)
	return nil
}

// pkiDir is where the agent keeps its certificates under the state
// directory.
func pkiDir(stateDir string) string { return filepath.Join(stateDir, "pki") }

// sourceLifetimes reads the certificate lifetimes of the source's
// HyperConverged, read-only as render and validate read it.
func (o *options) sourceLifetimes(ctx context.Context) (pki.Lifetimes, error) {
	e, err := o.openSource(ctx)
	if err != nil {
		return pki.Lifetimes{}, err
	}
	defer e.Close()
	_, node, err := e.load(ctx)
	if err != nil {
		return pki.Lifetimes{}, err
	}
	return certLifetimes(node.Set)
}

// certLifetimes converts the certConfig of the set's HyperConverged, after
// HCO's defaulting, to the lifetimes the agent rotates by. The first
// HyperConverged counts, as for the rest of its settings; none is all
// defaults.
func certLifetimes(set *manifests.Set) (pki.Lifetimes, error) {
	var cc *manifests.HyperConvergedCertConfig
	for _, o := range set.OfKind("HyperConverged") {
		if hc, ok := o.Value.(*manifests.HyperConverged); ok {
			cc = hc.Spec.CertConfig
			break
		}
	}
	d := cc.WithDefaults()
	l := pki.Lifetimes{
		CA:     pki.Lifetime{Duration: d.CA.Duration.Duration, RenewBefore: d.CA.RenewBefore.Duration},
		Server: pki.Lifetime{Duration: d.Server.Duration.Duration, RenewBefore: d.Server.RenewBefore.Duration},
	}
	if err := l.Validate(); err != nil {
		return pki.Lifetimes{}, fmt.Errorf("HyperConverged spec.%w", err)
	}
	return l, nil
}

// printCertStatus prints the certificates as a table, then the lifetimes
// their deadlines follow.
func printCertStatus(w io.Writer, st pki.Status) {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERT\tSUBJECT\tNOT BEFORE\tNOT AFTER\tNEXT ROTATION")
	row := func(name string, c pki.CertStatus) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, c.Subject, at(c.NotBefore), at(c.NotAfter), at(c.NextRotation))
	}
	row("ca", st.CA)
	row("server", st.Server)
	for _, c := range st.Previous {
		row("ca-previous", c)
	}
	tw.Flush()
	l := st.Lifetimes
	fmt.Fprintf(w, "Lifetimes: CA %s, renewed %s before its end; server %s, renewed %s before its end.\n",
		l.CA.Duration, l.CA.RenewBefore, l.Server.Duration, l.Server.RenewBefore)
}

func newCertsIssueClientCmd(o *options) *cobra.Command {
	var (
		ttl time.Duration
		out string
	)
	cmd := &cobra.Command{
		Use:   "issue-client NAME",
		Short: "Sign a client certificate with the agent's CA: NAME.crt and NAME.key, as good as a token for the API (--client-certificate, --client-key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := token.CheckName(args[0]); err != nil {
				return fmt.Errorf("NAME: %w", err)
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl %s: want a positive duration", ttl)
			}
			cert, key, err := pki.IssueClient(pkiDir(o.stateDir), args[0], ttl)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				data []byte
			}{{args[0] + ".key", key}, {args[0] + ".crt", cert}} {
				if err := atomicfile.Write(filepath.Join(out, f.name), 0o600, func(w *os.File) error {
					_, err := w.Write(f.data)
					return err
				}); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\n", filepath.Join(out, args[0]+".crt"), filepath.Join(out, args[0]+".key"))
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the certificate is valid (at most as long as the CA that signs it)")
	cmd.Flags().StringVar(&out, "out", ".", "directory to write NAME.crt and NAME.key into")
	return cmd
}
