package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/token"
)

// The token commands edit the files under --state directly, beside a
// running agent or without one: the token store locks its own files and
// the agent sees the changes at its next request, so they take no state
// database lock.
func newTokenCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Bearer tokens for the agent's API: create, list, revoke",
	}
	cmd.AddCommand(newTokenCreateCmd(o), newTokenListCmd(o), newTokenRevokeCmd(o))
	return cmd
}

// tokenCreated is what -o json|yaml prints for a new token.
type tokenCreated struct {
	Changed bool      `json:"changed"`
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Expires time.Time `json:"expires"`
}

func newTokenCreateCmd(o *options) *cobra.Command {
	var (
		ttl  time.Duration
		name string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print its secret (shown only this once)",
		Long: "Create a token and print its secret on stdout, alone, so that `nodevirt token create > file` keeps it.\n" +
			"The secret is stored nowhere: only its id, name and expiry are recorded.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl %s: want a positive duration, e.g. 24h", ttl)
			}
			if ttl > token.MaxTTL {
				return fmt.Errorf("--ttl %s: longer than a year (%s), the most a token may live", ttl, token.MaxTTL)
			}
			if name != "" {
				if err := token.CheckName(name); err != nil {
					return fmt.Errorf("--name: %w", err)
				}
			}
			s, err := token.Open(o.stateDir)
			if err != nil {
				return err
			}
			secret, info, err := s.Create(name, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %s (%s), expires %s. The secret is shown only this once.\n",
				info.ID, info.Name, info.Expires.UTC().Format(time.RFC3339))
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, tokenCreated{Changed: true, Token: secret, ID: info.ID, Name: info.Name, Expires: info.Expires})
			}
			_, err = fmt.Fprintln(w, secret)
			return err
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (at most a year)")
	cmd.Flags().StringVar(&name, "name", "", "the token's name, a DNS label (default token-<id>)")
	return cmd
}

func newTokenListCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			s, err := token.Open(o.stateDir)
			if err != nil {
				return err
			}
			list, err := s.List()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(w, "No tokens in %s.\n", filepath.Join(o.stateDir, token.File))
				return nil
			}
			printTokens(w, list, time.Now())
			return nil
		},
	}
}

func printTokens(w io.Writer, list []token.Info, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tSTATUS")
	for _, i := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.ID, i.Name,
			i.Created.UTC().Format(time.RFC3339), i.Expires.UTC().Format(time.RFC3339), i.Status(now))
	}
	tw.Flush()
}

// tokenRevoked is what -o json|yaml prints for a revocation: changed is
// false when the tokens were revoked already, so that configuration tools
// can report whether anything changed.
type tokenRevoked struct {
	Changed bool         `json:"changed"`
	Tokens  []token.Info `json:"tokens"`
}

func newTokenRevokeCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke the token with that id, or every active token with that name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			s, err := token.Open(o.stateDir)
			if err != nil {
				return err
			}
			changed, err := s.Revoke(args[0])
			if err != nil {
				return err
			}
			list, err := s.List()
			if err != nil {
				return err
			}
			// The tokens Revoke looked at: the one of that id, or else
			// those of that name.
			var matched []token.Info
			for _, i := range list {
				if i.ID == args[0] {
					matched = []token.Info{i}
					break
				}
				if i.Name == args[0] {
					matched = append(matched, i)
				}
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, tokenRevoked{Changed: changed, Tokens: matched})
			}
			if !changed {
				fmt.Fprintf(w, "Nothing to revoke: %q names no active token.\n", args[0])
			}
			printTokens(w, matched, time.Now())
			return nil
		},
	}
}
