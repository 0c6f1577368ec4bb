// Package fastly is the Fastly Domain Research status provider (Domainr's
// successor): GET /domain-management/v1/tools/status?domain=D with a
// Fastly-Key header, one JSON object per answer, mapped to a Lifecycle by
// lifecycle.Rules.FromDomainr (the status flags are Domainr's).
//
// Politeness (rate limits, retries, breaker) is stacked on top by the
// status package's wrappers.
package fastly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// Config is what the provider needs; zero fields take defaults.
type Config struct {
	// BaseURL, default https://api.fastly.com.
	BaseURL string
	Key     config.Secret
	// Scope is sent as scope= when set ("estimate" or "registrar").
	Scope string
	// Client is reused for every lookup; default has a 15 s timeout.
	Client  *http.Client
	MaxBody int64
	Now     func() time.Time
	Rules   *lifecycle.Rules
}

// Provider looks domains up with Fastly's domain status tool.
type Provider struct {
	api status.FlagsAPI
}

var _ status.Provider = (*Provider)(nil)

// New checks the configuration and returns the provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Key == "" {
		return nil, errors.New("fastly: no API key configured: set LAPSE_FASTLY_KEY (or providers.fastly.key_env/key_file)")
	}
	base, err := status.ParseBaseURL(lifecycle.SourceFastly, cfg.BaseURL, "https://api.fastly.com")
	if err != nil {
		return nil, err
	}
	p := &Provider{api: status.FlagsAPI{
		Source:  lifecycle.SourceFastly,
		Base:    base,
		MaxBody: cfg.MaxBody,
		Secrets: []string{cfg.Key.Reveal()},
		Parse:   ParseBody,
	}}
	p.api.Init(cfg.Client, cfg.Now, cfg.Rules)
	p.api.Request = func(req *http.Request, domain string) {
		req.URL.Path += "/domain-management/v1/tools/status"
		q := url.Values{"domain": {domain}}
		if cfg.Scope != "" {
			q.Set("scope", cfg.Scope)
		}
		req.URL.RawQuery = q.Encode()
		req.Header.Set("Fastly-Key", cfg.Key.Reveal())
	}
	return p, nil
}

// Name is lifecycle.SourceFastly.
func (p *Provider) Name() lifecycle.Source { return lifecycle.SourceFastly }

// Host is the remote host, the key of its rate limit and breaker.
func (p *Provider) Host() string { return p.api.Base.Host }

// Lookup asks Fastly for the status of domain.
func (p *Provider) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	return p.api.Lookup(ctx, domain)
}

// answer is Fastly's status object ({"domain","zone","status","scope","tags",…}),
// or an error object ({"msg","detail"} or {"errors":[…]}).
type answer struct {
	Domain *string `json:"domain"`
	Zone   string  `json:"zone"`
	Status *string `json:"status"`
	Scope  string  `json:"scope"`
	Tags   string  `json:"tags"`

	Msg    string `json:"msg"`
	Detail string `json:"detail"`
	Errors []struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// APIError is a Fastly answer that carries an error instead of a status.
type APIError struct{ Message string }

func (e *APIError) Error() string { return "fastly error: " + e.Message }

// ParseBody reads a status answer and returns its status flags for domain
// (e.g. "undelegated inactive"). An error object, garbage, a missing
// status or an answer for another domain is an error. Pure: `lapse parse
// --kind fastly` uses it.
func ParseBody(body []byte, domain string) (string, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("unreadable fastly answer: %w", err)
	}
	if len(a.Errors) > 0 {
		var m []string
		for _, e := range a.Errors {
			m = append(m, strings.Trim(strings.TrimSpace(e.Title+": "+e.Detail), ": "))
		}
		return "", &APIError{Message: strings.Join(m, "; ")}
	}
	if a.Msg != "" && a.Status == nil {
		msg := a.Msg
		if a.Detail != "" {
			msg += ": " + a.Detail
		}
		return "", &APIError{Message: msg}
	}
	if a.Status == nil || strings.TrimSpace(*a.Status) == "" {
		return "", errors.New("fastly answer has no status")
	}
	want := address.Fold(domain)
	if a.Domain != nil && want != "" && address.Fold(*a.Domain) != want {
		return "", fmt.Errorf("fastly answer is for %q, not %s", *a.Domain, domain)
	}
	return *a.Status, nil
}
