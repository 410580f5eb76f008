package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/token"
)

func newDashboardCmd(o *options) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print the address of the running agent's web page with a new token (opening it once sets a cookie)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			base := o.client.server
			if base == "" {
				c, err := o.runningAgent(ctx)
				if err != nil {
					return err
				}
				if c == nil {
					return fmt.Errorf("no agent runs on the state directory %s", o.stateDir)
				}
				var v buildVersion
				if err := c.Get(ctx, api.Prefix+"/version", &v); err != nil {
					return err
				}
				if v.Listen == "" {
					return errors.New("the running agent serves no HTTPS API (it was started with --listen '')")
				}
				base = v.Listen
			}
			tokens, err := token.Open(o.stateDir)
			if err != nil {
				return err
			}
			secret, info, err := tokens.Create("dashboard", ttl)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s expires %s; the browser must trust %s (or accept the certificate)\n",
				info.ID, info.Expires.Local().Format(time.RFC3339), pkiDir(o.stateDir)+"/ca.crt")
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s/?token=%s\n", base, secret)
			return err
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 12*time.Hour, "how long the page's token (and so its cookie) is valid")
	return cmd
}
