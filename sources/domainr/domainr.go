// Package domainr is the Domainr v2 status provider: one GET per domain
// against the commercial endpoint (client_id) or RapidAPI (mashape-key),
// mapped to a Lifecycle by lifecycle.Rules.FromDomainr.
//
// Politeness (rate limits, retries, breaker) is not here: the status
// package's wrappers stack on top of this provider.
package domainr

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
	// BaseURL, e.g. https://api.domainr.com (commercial) or
	// https://domainr.p.rapidapi.com (RapidAPI).
	BaseURL string
	// ClientID (commercial) or MashapeKey (RapidAPI); one must be set.
	ClientID   config.Secret
	MashapeKey config.Secret
	// Client is the HTTP client, reused for every lookup; its Timeout (if
	// any) bounds one request. Default: a client with a 15 s timeout.
	Client *http.Client
	// MaxBody caps an answer (default status.DefaultMaxBody).
	MaxBody int64
	Now     func() time.Time
	Rules   *lifecycle.Rules
}

// Provider looks domains up with Domainr's /v2/status.
type Provider struct {
	api status.FlagsAPI
}

var _ status.Provider = (*Provider)(nil)

// New checks the configuration and returns the provider.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" && cfg.MashapeKey == "" {
		return nil, errors.New("domainr: no client_id or mashape key configured: set LAPSE_DOMAINR_CLIENT_ID (or providers.domainr.client_id_env/_file)")
	}
	base, err := status.ParseBaseURL(lifecycle.SourceDomainr, cfg.BaseURL, "https://api.domainr.com")
	if err != nil {
		return nil, err
	}
	p := &Provider{api: status.FlagsAPI{
		Source:  lifecycle.SourceDomainr,
		Base:    base,
		MaxBody: cfg.MaxBody,
		Secrets: []string{cfg.ClientID.Reveal(), cfg.MashapeKey.Reveal()},
		Parse:   ParseBody,
		Explain: errorsMessage,
	}}
	p.api.Init(cfg.Client, cfg.Now, cfg.Rules)
	p.api.Request = func(req *http.Request, domain string) {
		req.URL.Path += "/v2/status"
		q := url.Values{"domain": {domain}}
		if cfg.ClientID != "" {
			q.Set("client_id", cfg.ClientID.Reveal())
		} else {
			q.Set("mashape-key", cfg.MashapeKey.Reveal())
			req.Header.Set("X-RapidAPI-Key", cfg.MashapeKey.Reveal())
			req.Header.Set("X-RapidAPI-Host", base.Host)
		}
		req.URL.RawQuery = q.Encode()
	}
	return p, nil
}

// Name is lifecycle.SourceDomainr.
func (p *Provider) Name() lifecycle.Source { return lifecycle.SourceDomainr }

// Host is the remote host, the key of its rate limit and breaker.
func (p *Provider) Host() string { return p.api.Base.Host }

// Lookup asks Domainr for the status of domain.
func (p *Provider) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	return p.api.Lookup(ctx, domain)
}

// answer is Domainr's /v2/status body.
type answer struct {
	Status []struct {
		Domain  string `json:"domain"`
		Zone    string `json:"zone"`
		Status  string `json:"status"`
		Summary string `json:"summary"`
	} `json:"status"`
	Errors []apiError `json:"errors"`
}

type apiError struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Detail  string          `json:"detail"`
}

func (e apiError) String() string {
	s := strings.TrimSpace(e.Message)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if c := strings.Trim(string(e.Code), `"`); c != "" && c != "null" {
		s += " (code " + c + ")"
	}
	return s
}

// APIError is a Domainr answer carrying "errors": the provider refused or
// failed the query. Its message and code are kept for the evidence.
type APIError struct{ Messages []string }

func (e *APIError) Error() string { return "domainr error: " + strings.Join(e.Messages, "; ") }

// ParseBody reads a /v2/status body and returns the status flags for domain
// (e.g. "active registrar"). A body with "errors", garbage, or no entry for
// the domain is an error. It is pure: `lapse parse --kind domainr` uses it.
func ParseBody(body []byte, domain string) (string, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		// Not permanent: a garbled answer is usually a proxy or a glitch.
		return "", fmt.Errorf("unreadable domainr answer: %w", err)
	}
	if len(a.Errors) > 0 {
		e := &APIError{}
		for _, x := range a.Errors {
			e.Messages = append(e.Messages, x.String())
		}
		return "", e
	}
	want := address.Fold(domain)
	for _, s := range a.Status {
		if want == "" || address.Fold(s.Domain) == want {
			if strings.TrimSpace(s.Status) == "" {
				return "", fmt.Errorf("domainr answer for %s has an empty status", s.Domain)
			}
			return s.Status, nil
		}
	}
	return "", fmt.Errorf("domainr answer has no status for %s", domain)
}

// errorsMessage pulls the "errors" messages out of an error body, if any.
func errorsMessage(body []byte) string {
	var a answer
	if json.Unmarshal(body, &a) != nil || len(a.Errors) == 0 {
		return ""
	}
	var m []string
	for _, x := range a.Errors {
		m = append(m, x.String())
	}
	return strings.Join(m, "; ")
}
