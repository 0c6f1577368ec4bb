// Command lapse protects package-registry accounts from domain resurrection:
// it snapshots verified emails, resolves the lifecycle of their domains and
// proposes a reviewed changeset of addresses to un-verify.
//
// This package is wiring only: flags, configuration and exit codes. The work
// lives in the packages each command calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/pipeline"
)

// Exit codes, decided in one place (exitCode).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitBlocked     = 3
	exitDegraded    = 4
	exitInterrupted = 130
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globalOptions are the flags every command shares.
type globalOptions struct {
	configPath string
	dataDir    string
	logFormat  string
	logLevel   string

	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	log            *slog.Logger
}

// commands collects the subcommand constructors; each cmd_<verb>.go adds its
// own in an init function so no file lists them all.
var commands []func(g *globalOptions) *cobra.Command

func register(f func(g *globalOptions) *cobra.Command) { commands = append(commands, f) }

// usageError marks a wrong invocation or bad configuration (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newRootCmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "lapse",
		Short: "Protect registry accounts from domain resurrection",
		Long: `lapse finds verified email addresses whose domains have lapsed, or lapsed
and were registered again by someone else, and proposes a reviewed changeset
of addresses to un-verify before an attacker can reset the account's password.

The nightly job: snapshot → plan → resolve → classify → publish.
Configuration: lapse.toml (see "lapse config example"), LAPSE_* environment
variables and flags, in increasing precedence.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error,
3 blocked by the safety brake, 4 degraded (the night finished, but more
than resolve.max_unknown_fraction of its domains are unknown), 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setupLogging()
		},
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "configuration file (default ./lapse.toml when present)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data folder (overrides data_dir and LAPSE_DATA_DIR)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	// Cobra returns its own usage errors as plain errors: a flag it cannot
	// parse goes through the flag error func, a wrong number of arguments
	// through each command's Args (argsAreUsage) and a first argument that
	// names no command out of Find (unknownCommand); each is a usageError.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	argsAreUsage(root)
	return root
}

// argsAreUsage makes the errors of c's and its subcommands' argument
// validators usage errors.
func argsAreUsage(c *cobra.Command) {
	if v := c.Args; v != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := v(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, s := range c.Commands() {
		argsAreUsage(s)
	}
}

// unknownCommand asks root's Find, as Execute will, which command args
// name, with the help and completion commands Execute adds: its error (a
// first argument that names no command) is a usage error. A shell's
// completion request is left to Execute.
func unknownCommand(root *cobra.Command, args []string) error {
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		return nil
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	if _, _, err := root.Find(args); err != nil {
		return usageError{err}
	}
	return nil
}

func (g *globalOptions) setupLogging() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usagef("--log-format %q: want text or json", g.logFormat)
	}
	return nil
}

// loadConfig reads the configuration and applies the global flags over it.
func (g *globalOptions) loadConfig() (config.Config, error) {
	path, explicit := g.configPath, g.configPath != ""
	if !explicit {
		path = "lapse.toml"
	}
	if v, ok := lookupEnv(g.environ, "LAPSE_CONFIG"); ok && !explicit {
		path, explicit = v, true
	}
	c, err := config.Load(path, explicit, g.environ)
	if err != nil {
		return c, usageError{err}
	}
	if g.dataDir != "" {
		c.DataDir = g.dataDir
	}
	if err := c.Validate(); err != nil {
		return c, usageError{fmt.Errorf("%w: %v", config.ErrConfig, err)}
	}
	return c, nil
}

func lookupEnv(environ []string, key string) (string, bool) {
	for i := len(environ) - 1; i >= 0; i-- {
		if len(environ[i]) > len(key) && environ[i][:len(key)+1] == key+"=" {
			return environ[i][len(key)+1:], true
		}
	}
	return "", false
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, pipeline.ErrBlocked):
		return exitBlocked
	case errors.Is(err, pipeline.ErrDegraded):
		return exitDegraded
	case errors.As(err, &ue), errors.Is(err, config.ErrConfig):
		return exitUsage
	default:
		return exitFailure
	}
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	restrictUmask()
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}
	g.log = slog.New(slog.NewTextHandler(stderr, nil))
	root := newRootCmd(g)
	root.SetArgs(args)
	err := unknownCommand(root, args)
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	code := exitCode(err)
	if err != nil {
		switch code {
		case exitInterrupted:
			fmt.Fprintln(stderr, "lapse: interrupted")
		default:
			fmt.Fprintf(stderr, "lapse: %v\n", err)
		}
	}
	return code
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}
