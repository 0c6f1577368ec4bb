package pipeline

import (
	"errors"
	"fmt"

	"github.com/lapse-dev/lapse/internal/night"
)

// ErrBlocked is wrapped by the error of a night whose changeset the safety
// brake held: the files are written with status blocked and the CLI exits 3.
var ErrBlocked = errors.New("blocked by the safety brake")

// ErrDegraded is wrapped by the error of a night that finished and
// published, but whose share of unknown domains is over
// resolve.max_unknown_fraction: the CLI exits 4.
var ErrDegraded = errors.New("night degraded")

// blockedError is a night held by the brake for reason.
func blockedError(reason string) error { return fmt.Errorf("%w: %s", ErrBlocked, reason) }

// degradedError is a night with too many of its domains unknown.
func degradedError(f night.Figures, max float64) error {
	return fmt.Errorf("%w: %d of %d domains (%.1f%%) are unknown, over resolve.max_unknown_fraction %g; the changeset was written, "+
		"but it misses what the failed lookups hide: check the providers and the network (failed lookups are asked again next night)",
		ErrDegraded, f.UnknownDomains, f.Domains, 100*f.UnknownShare(), max)
}
