package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// FlagsAPI is what the Domainr and Fastly providers share: one GET per
// domain against a JSON status endpoint, the answer capped and classified
// (throttled, unauthorized, 5xx), its status flags read by the provider's
// own parser and mapped with Rules.FromDomainr. Secrets are redacted from
// every error it returns.
type FlagsAPI struct {
	Source  lifecycle.Source
	Base    *url.URL
	Client  *http.Client
	MaxBody int64
	Now     func() time.Time
	Rules   lifecycle.Rules
	Secrets []string
	// Request adds the path, query and headers of one lookup to req, whose
	// URL starts as a copy of Base.
	Request func(req *http.Request, domain string)
	// Parse reads the status flags for domain from a successful body.
	Parse func(body []byte, domain string) (string, error)
	// Explain, when set, returns the API's own message in a failed answer,
	// added to the error for the evidence.
	Explain func(body []byte) string
}

// ParseBaseURL checks a provider's base_url setting.
func ParseBaseURL(source lifecycle.Source, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: base_url %q is not an http(s) URL", source, raw)
	}
	return u, nil
}

// Init fills in the defaults: a client with a 15 s timeout, time.Now, and
// lifecycle.DefaultRules.
func (a *FlagsAPI) Init(client *http.Client, now func() time.Time, rules *lifecycle.Rules) {
	a.Client, a.Now, a.Rules = client, now, lifecycle.DefaultRules
	if a.Client == nil {
		a.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if rules != nil {
		a.Rules = *rules
	}
}

// Lookup asks the API for the status of domain.
func (a *FlagsAPI) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	st, err := a.fetch(ctx, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: %w", a.Source, domain, RedactError(err, a.Secrets...))
	}
	now := a.Now().UTC()
	lc := a.Rules.FromDomainr(domain, st, a.Source, now)
	lc.CheckedAt = now
	if lc.AsOf.IsZero() {
		lc.AsOf = now
	}
	return lc.WithServer(a.Base.Hostname()), nil
}

func (a *FlagsAPI) fetch(ctx context.Context, domain string) (string, error) {
	u := *a.Base
	u.Path = strings.TrimSuffix(u.Path, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	a.Request(req, domain)
	resp, err := a.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, rerr := ReadCapped(resp.Body, a.MaxBody)
	if cerr := ClassifyHTTP(resp.StatusCode, resp.Header, body, a.Now()); cerr != nil {
		if a.Explain != nil && !errors.Is(cerr, ErrUnauthorized) {
			if msg := a.Explain(body); msg != "" {
				cerr = fmt.Errorf("%w (%s: %s)", cerr, a.Source, msg)
			}
		}
		return "", cerr
	}
	if rerr != nil {
		if !errors.Is(rerr, ErrBodyTooLarge) {
			rerr = fmt.Errorf("read answer: %w", rerr)
		}
		return "", rerr
	}
	return a.Parse(body, domain)
}
