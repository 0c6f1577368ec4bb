package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/sources/address"
)

func init() { register(newNormalizeCmd) }

func newNormalizeCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "normalize [EMAIL…]",
		Short: "Print the host and registrable domain of email addresses as JSON lines",
		Long: `normalize prints, for each address in order, one JSON object:
{"email":…,"host":…,"domain":…,"invalid_reason":…}; host, domain and
invalid_reason are null when absent. With no arguments it reads one address
per line from standard input.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runNormalize(cmd.Context(), g.stdin, g.stdout, args)
		},
	}
}

// normalizeLine is the JSON shape of one normalized address.
type normalizeLine struct {
	Email         string  `json:"email"`
	Host          *string `json:"host"`
	Domain        *string `json:"domain"`
	InvalidReason *string `json:"invalid_reason"`
}

func runNormalize(ctx context.Context, stdin io.Reader, stdout io.Writer, args []string) error {
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := address.NewNormalizer(address.DefaultCacheSize)
	emit := func(email string) error {
		r := n.Normalize(email)
		return enc.Encode(normalizeLine{Email: r.Email, Host: nullable(r.Host), Domain: nullable(r.Domain), InvalidReason: nullable(r.InvalidReason)})
	}
	if len(args) > 0 {
		for _, a := range args {
			if err := emit(a); err != nil {
				return fmt.Errorf("normalize: write: %w", err)
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("normalize: write: %w", err)
		}
		return nil
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := emit(strings.TrimSuffix(sc.Text(), "\r")); err != nil {
			return fmt.Errorf("normalize: write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("normalize: read stdin: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("normalize: write: %w", err)
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
