package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodevirt/nodevirt/internal/flagconfig"
)

// defaultConfigPath is a host path, not one under --root: the file
// configures the binary itself, like kubelet's --config.
const defaultConfigPath = "/etc/nodevirt/config.yaml"

// configEnv names the config file when --config is not given.
const configEnv = "NODEVIRT_CONFIG"

// annotationConfig "skip" on a command leaves the config file unread:
// install writes the file and must work when the old one is broken.
const annotationConfig = "nodevirt.io/config"

// applyConfig sets the flags of cmd that the command line left alone from
// the config file. Keys that no command knows are errors; keys of other
// commands are left for them.
func (o *options) applyConfig(cmd *cobra.Command) error {
	o.configRead, o.fromConfig = "", map[string]bool{}
	if cmd.Annotations[annotationConfig] == "skip" {
		return nil
	}
	path, explicit := o.configPath, cmd.Flags().Changed("config")
	if env := os.Getenv(configEnv); !explicit && env != "" {
		path, explicit = env, true
	}
	if path == "" {
		return nil
	}
	file, err := flagconfig.Read(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := checkConfigKeys(cmd.Root(), file); err != nil {
		return err
	}
	applied, err := file.Apply(cmd.Flags())
	if err != nil {
		return err
	}
	o.configRead = path
	for _, e := range applied {
		o.fromConfig[e.Key] = true
	}
	return nil
}

// checkConfigKeys refuses a key that is no flag of any command of the tree.
func checkConfigKeys(root *cobra.Command, file *flagconfig.File) error {
	for _, e := range file.Entries {
		if e.Key == "config" {
			return fmt.Errorf("%s:%d: config: a config file cannot name another one", file.Path, e.Line)
		}
	}
	return file.CheckKeys(func(name string) bool { return name != "help" && hasFlag(root, name) })
}

func hasFlag(c *cobra.Command, name string) bool {
	if c.Flags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil {
		return true
	}
	for _, sub := range c.Commands() {
		if hasFlag(sub, name) {
			return true
		}
	}
	return false
}

// addRunFlags gives cmd the flags of run (bound to a scratch copy), so
// that install and config show take every setting the service takes.
func addRunFlags(cmd *cobra.Command) {
	cmd.Flags().AddFlagSet(newRunCmd(&options{}).Flags())
}

// newRunFlags returns the flags of a fresh run command, its own and the
// global ones, to check settings against the way the service will.
func newRunFlags() (*pflag.FlagSet, error) {
	run, _, err := newRootCmd().Find([]string{"run"})
	if err != nil {
		return nil, err
	}
	run.InheritedFlags() // merges the root's persistent flags into Flags
	return run.Flags(), nil
}

// setting is one row of config show.
type setting struct {
	Name   string `json:"name"`
	Value  any    `json:"value"`
	Source string `json:"source"` // default, config or flag
}

type configReport struct {
	// File is the config file read, "" when none was.
	File     string    `json:"file"`
	Settings []setting `json:"settings"`
}

func newConfigCmd(o *options) *cobra.Command {
	cfg := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration file (" + defaultConfigPath + ")",
		Args:  cobra.NoArgs,
	}
	show := &cobra.Command{
		Use:     "show",
		Aliases: []string{"view"},
		Short:   "Print the settings nodevirt run would use: each flag's value and whether it came from its default, the config file or the command line",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			rep := configReport{File: o.configRead, Settings: []setting{}}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" || f.Name == "config" {
					return
				}
				src := "default"
				switch {
				case o.fromConfig[f.Name]:
					src = "config"
				case f.Changed:
					src = "flag"
				}
				rep.Settings = append(rep.Settings, setting{Name: f.Name, Value: flagconfig.Value(f), Source: src})
			})
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, rep)
			}
			file := rep.File
			if file == "" {
				file = "none"
			}
			fmt.Fprintf(w, "Config file: %s\n", file)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVALUE\tSOURCE")
			for _, s := range rep.Settings {
				fmt.Fprintf(tw, "%s\t%v\t%s\n", s.Name, s.Value, s.Source)
			}
			return tw.Flush()
		},
	}
	addRunFlags(show)
	cfg.AddCommand(show)
	return cfg
}
