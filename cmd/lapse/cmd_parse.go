package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/domainr"
	"github.com/lapse-dev/lapse/sources/fastly"
	"github.com/lapse-dev/lapse/sources/rdap"
	"github.com/lapse-dev/lapse/sources/whois"
)

func init() { register(newParseCmd) }

type parseOptions struct {
	kind       string
	domain     string
	asOf       string
	httpStatus int
	file       string
	now        func() time.Time
}

// maxCapture bounds what lapse parse reads: far above any real answer.
const maxCapture = 16 << 20

func newParseCmd(g *globalOptions) *cobra.Command {
	opts := parseOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "parse --kind whois|rdap|domainr|fastly [--domain D] [--as-of RFC3339] FILE|-",
		Short: "Map a captured provider answer to a lifecycle, offline",
		Long: `parse reads one captured raw answer (a WHOIS text, an RDAP JSON body, a
Domainr /v2/status or Fastly status body) from FILE, or stdin for "-", and
prints the lifecycle lapse would conclude from it as JSON: domain, state,
statuses, registered_at, expires_at (RFC 3339 UTC or null), source, error.
No network is used. An answer lapse cannot use (throttling, garbage, an
error body) prints state "unknown" with the reason in "error".

For RDAP a JSON error object with errorCode stands for that HTTP status;
--http-status gives the status of a capture whose body does not say.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runParse(opts, g.stdin, g.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.kind, "kind", "", "answer kind: whois, rdap, domainr or fastly (required)")
	f.StringVar(&opts.domain, "domain", "", "the domain asked for (default: the name the answer gives)")
	f.StringVar(&opts.asOf, "as-of", "", "judge the answer at this RFC 3339 time (default now)")
	f.IntVar(&opts.httpStatus, "http-status", 200, "rdap: the HTTP status the answer came with")
	return cmd
}

// parseOutput is the printed record: the fields a reviewer compares.
type parseOutput struct {
	Domain       string           `json:"domain"`
	State        lifecycle.State  `json:"state"`
	Statuses     []string         `json:"statuses"`
	RegisteredAt *time.Time       `json:"registered_at"`
	ExpiresAt    *time.Time       `json:"expires_at"`
	LastChanged  *time.Time       `json:"last_changed"`
	Delegated    *bool            `json:"delegated"`
	Source       lifecycle.Source `json:"source"`
	AsOf         time.Time        `json:"as_of"`
	Error        string           `json:"error"`
}

func runParse(opts parseOptions, stdin io.Reader, stdout io.Writer) error {
	kind := strings.ToLower(opts.kind)
	switch kind {
	case "whois", "rdap", "domainr", "fastly":
	case "":
		return usagef("parse: --kind is required: whois, rdap, domainr or fastly")
	default:
		return usagef("parse: --kind %q: want whois, rdap, domainr or fastly", opts.kind)
	}
	asOf := opts.now().UTC()
	if opts.asOf != "" {
		t, err := time.Parse(time.RFC3339, opts.asOf)
		if err != nil {
			return usagef("parse: --as-of %q: want an RFC 3339 time such as 2026-06-15T00:00:00Z", opts.asOf)
		}
		asOf = t.UTC()
	}
	if opts.httpStatus < 100 || opts.httpStatus > 599 {
		return usagef("parse: --http-status %d: want an HTTP status such as 200 or 404", opts.httpStatus)
	}
	body, err := readCapture(opts.file, stdin)
	if err != nil {
		return err
	}
	domain := address.Fold(opts.domain)
	var l lifecycle.Lifecycle
	src := lifecycle.Source(kind)
	switch kind {
	case "whois":
		l, err = whois.Parse(string(body), domain, asOf)
	case "rdap":
		l, err = rdap.Parse(body, opts.httpStatus, domain, asOf)
	case "domainr", "fastly":
		var flags string
		if kind == "domainr" {
			flags, err = domainr.ParseBody(body, domain)
		} else {
			flags, err = fastly.ParseBody(body, domain)
		}
		if domain == "" {
			domain = answerDomain(body)
		}
		if err == nil {
			l = lifecycle.DefaultRules.FromDomainr(domain, flags, src, asOf)
		}
	}
	if err != nil {
		l = lifecycle.FromError(domain, src, err, asOf)
	}
	out := parseOutput{
		Domain: l.Domain, State: l.State, Statuses: l.Statuses,
		RegisteredAt: l.RegisteredAt, ExpiresAt: l.ExpiresAt, LastChanged: l.LastChanged,
		Delegated: l.Delegated, Source: l.Source, AsOf: l.AsOf, Error: l.Error,
	}
	if out.Statuses == nil {
		out.Statuses = []string{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func readCapture(name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usagef("parse: cannot read the capture: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCapture+1))
	if err != nil {
		return nil, fmt.Errorf("parse: reading %s: %w", name, err)
	}
	if len(b) > maxCapture {
		return nil, usagef("parse: %s is larger than %d MiB: not a single provider answer", name, maxCapture>>20)
	}
	return b, nil
}

// answerDomain is the domain a Domainr or Fastly body names, for output
// when --domain was not given.
func answerDomain(body []byte) string {
	var a struct {
		Domain string `json:"domain"`
		Status json.RawMessage
	}
	if json.Unmarshal(body, &a) != nil {
		return ""
	}
	if a.Domain != "" {
		return strings.ToLower(a.Domain)
	}
	var list []struct {
		Domain string `json:"domain"`
	}
	if json.Unmarshal(a.Status, &list) == nil && len(list) > 0 {
		return strings.ToLower(list[0].Domain)
	}
	return ""
}
