// Package metrics writes a night's figures as a Prometheus textfile
// (DATA/metrics.prom) for node_exporter's textfile collector.
package metrics

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
)

// Write writes the night's figures as a Prometheus textfile
// (node_exporter's textfile collector), atomically.
func Write(path string, m night.Manifest, now time.Time) error {
	var b strings.Builder
	gauge := func(name, help string, v float64, labels ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		fmt.Fprintf(&b, "%s%s %s\n", name, promLabels(labels...), strconv.FormatFloat(v, 'g', -1, 64))
	}
	vec := func(name, help, label string, vals map[string]float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if label == "provider,outcome" {
				p, o, _ := strings.Cut(k, "/")
				fmt.Fprintf(&b, "%s%s %s\n", name, promLabels("provider", p, "outcome", o), strconv.FormatFloat(vals[k], 'g', -1, 64))
				continue
			}
			fmt.Fprintf(&b, "%s%s %s\n", name, promLabels(label, k), strconv.FormatFloat(vals[k], 'g', -1, 64))
		}
	}
	f := m.Figures
	d, _ := night.Parse(m.Date)
	gauge("lapse_night_date_seconds", "The night these figures are for (Unix time of its date).", float64(d.Unix()))
	gauge("lapse_run_finished_seconds", "When the night finished (Unix time).", float64(now.Unix()))
	gauge("lapse_run_success", "1 when the night finished (even if blocked or degraded), 0 when it failed.",
		b2f(m.Finished()))
	gauge("lapse_changeset_blocked", "1 when the safety brake held tonight's changeset.", b2f(m.Outcome == night.OutcomeBlocked))
	gauge("lapse_run_degraded", "1 when too many of tonight's domains are unknown (resolve.max_unknown_fraction).", b2f(f.Degraded && m.Outcome != night.OutcomeFailed))
	gauge("lapse_unknown_domains", "Domains of tonight's snapshot whose state is unknown (every source failed or could not tell).", float64(f.UnknownDomains))
	gauge("lapse_unknown_addresses", "Addresses decided unknown tonight.", float64(f.UnknownAddresses))
	gauge("lapse_addresses", "Addresses in tonight's snapshot.", float64(f.Addresses))
	gauge("lapse_addresses_verified", "Verified addresses in tonight's snapshot.", float64(f.Verified))
	gauge("lapse_addresses_invalid", "Addresses without a registrable domain.", float64(f.Invalid))
	gauge("lapse_domains", "Distinct registrable domains in tonight's snapshot.", float64(f.VerifiedDomains))
	gauge("lapse_domains_planned", "Domains due and looked up tonight.", float64(f.Planned))
	gauge("lapse_domains_deferred", "Domains due but over tonight's lookup budget.", float64(f.Deferred))
	gauge("lapse_cache_hits", "Domains answered from the cache (not due).", float64(f.Fresh))
	lk := map[string]float64{}
	for k, v := range f.LookupOutcomes {
		lk[k] = float64(v)
	}
	vec("lapse_lookups", "Provider lookups tonight by provider and outcome.", "provider,outcome", lk)
	gauge("lapse_flagged", "Addresses tonight's changeset un-verifies.", float64(f.Flagged))
	fr := map[string]float64{}
	for k, v := range f.FlaggedByReason {
		fr[k] = float64(v)
	}
	vec("lapse_flagged_by_reason", "Addresses flagged tonight by reason.", "reason", fr)
	gauge("lapse_watch", "Addresses on watch (expiring, grace, awaiting confirmation).", float64(f.Watch))
	st := map[string]float64{}
	for _, s := range m.Stages {
		st[s.Stage] = s.FinishedAt.Sub(s.StartedAt).Seconds()
	}
	vec("lapse_stage_seconds", "Duration of each stage of the night's last run.", "stage", st)
	return atomicfile.WriteFile(path, []byte(b.String()), 0o640)
}

func promLabels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
