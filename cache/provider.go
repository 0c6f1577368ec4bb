package cache

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// cachedProvider asks the cache before its provider (as domain_exporter's
// cache.go wraps any client).
type cachedProvider struct {
	c    *Cache
	next status.Provider
	log  *slog.Logger
}

var _ status.Provider = (*cachedProvider)(nil)

// Provider wraps next with the cache: a domain whose entry is fresh (not
// Due on the cache's clock) is answered with the entry's Lifecycle without
// asking next, and logged at info as "answered from the cache"; every
// answer next gives is recorded (a chain's unknown answers too: Record
// keeps the last known state and counts the failure). An error of next is
// returned as it is and never cached; a failure of the cache itself is an
// error naming the domain and the cache. A nil log discards.
func (c *Cache) Provider(next status.Provider, log *slog.Logger) status.Provider {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &cachedProvider{c: c, next: next, log: log}
}

func (p *cachedProvider) Name() lifecycle.Source { return p.next.Name() }

func (p *cachedProvider) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	e, ok, err := p.c.Get(ctx, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s: cache: %w", domain, err)
	}
	if ok && !Due(e, p.c.now()) {
		p.log.Info("answered from the cache", "domain", domain, "next_check", e.NextCheck)
		return e.Lifecycle, nil
	}
	lc, err := p.next.Lookup(ctx, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	if _, err := p.c.Record(ctx, lc); err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s: cache: %w", domain, err)
	}
	return lc, nil
}
