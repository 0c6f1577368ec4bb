package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/config"
)

func init() { register(newConfigCmd) }

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print an example configuration or the effective one",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print a commented lapse.toml with every setting at its default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(g.stdout, config.Example())
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (file, environment and flags applied) as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			c.Source = config.RedactSource(c.Source)
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(c)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "env",
		Short: "List the LAPSE_* environment variables that override settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, k := range config.EnvKeys() {
				fmt.Fprintln(g.stdout, k)
			}
			return nil
		},
	})
	return cmd
}
