package demo

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// PolicyScore compares one policy's un-verifications with the truth.
//
//   - precision: flagged addresses whose holder's registration had reached
//     redemption or later (the simulator's RiskStart) by the night lapse
//     flagged them, over all flagged addresses (1 when none was flagged).
//   - recall: over the at-risk addresses lapse could have caught in time
//     (risk started by the last night, the name not yet registrable by
//     others before the first night, and the address verified when its risk
//     started or already flagged), those flagged no later than the night the
//     name became registrable by others (1 when there were none). An
//     address neither flagged nor registrable by others by the last night
//     is undecided: counted in pending, not in recall.
//   - lead_days_median: over those caught in time whose name became
//     registrable during the demo, the median of days from the flag to that
//     date.
//   - resurrections: at-risk addresses whose name another holder registered
//     during the demo while the address was verified or flagged;
//     resurrections_caught: those flagged by the night after the
//     re-registration.
//   - resurrections_before_start: addresses verified on the first night
//     (or flagged then) whose name another holder had registered before it
//     (the demo's world is older than lapse); resurrections_before_start_caught:
//     those flagged by the second night. They are outside recall (the name
//     was registrable by others before the first night). Only a
//     registration date tells them: a registry that publishes none (.de's
//     WHOIS) hides them from every policy.
//   - lookups: provider requests over all nights; lookups_by_source the
//     same by provider (a status API's against RDAP/WHOIS).
type PolicyScore struct {
	Precision           float64 `json:"precision"`
	Recall              float64 `json:"recall"`
	LeadDaysMedian      float64 `json:"lead_days_median"`
	Resurrections       int     `json:"resurrections"`
	ResurrectionsCaught int     `json:"resurrections_caught"`
	Lookups             int     `json:"lookups"`
	// LookupsBySource splits Lookups by provider.
	LookupsBySource map[string]int `json:"lookups_by_source"`

	ResurrectionsBeforeStart       int `json:"resurrections_before_start"`
	ResurrectionsBeforeStartCaught int `json:"resurrections_before_start_caught"`
	// MissedBeforeStartSample names a few of those not caught.
	MissedBeforeStartSample []string `json:"missed_before_start_sample"`

	Flagged        int `json:"flagged"`
	TruePositives  int `json:"true_positives"`
	FalsePositives int `json:"false_positives"`
	AtRisk         int `json:"at_risk"`
	CaughtInTime   int `json:"caught_in_time"`
	// Pending are at-risk addresses not flagged yet whose name is still not
	// registrable by others on the last night: neither caught nor missed.
	Pending int `json:"pending"`
	// Reverified counts the owners who verified an un-verified address
	// again while they still held its domain; ReflagLoops the addresses
	// un-verified again after that while the owner still held the domain
	// (the re-flag loop of pypi/warehouse#18356; target 0).
	Reverified    int `json:"reverified"`
	ReflagLoops   int `json:"reflag_loops"`
	Nights        int `json:"nights"`
	BlockedNights int `json:"blocked_nights"`
	// Samples name a few misses and false positives (email_id@domain) for
	// whoever investigates a score below target.
	MissedSample        []string `json:"missed_sample"`
	FalsePositiveSample []string `json:"false_positive_sample"`
}

// Score is score.json: one PolicyScore per policy run.
type Score map[string]PolicyScore

func scorePolicy(ctx context.Context, o Options, r *policyRun) (PolicyScore, error) {
	s := PolicyScore{Lookups: r.lookups, LookupsBySource: r.bySource, Nights: o.Nights, BlockedNights: r.blocked, Reverified: r.reverified, ReflagLoops: r.loops, MissedSample: []string{}, FalsePositiveSample: []string{}, MissedBeforeStartSample: []string{}}
	first := o.Start
	last := o.Start.AddDate(0, 0, o.Nights-1)
	truth := r.world.AddressTruth(last)
	// verifiedOn memoizes the account table per date (un-verifications
	// applied by the demo included).
	verified := map[time.Time]map[int64]bool{}
	verifiedOn := func(d time.Time) map[int64]bool {
		if v, ok := verified[d]; ok {
			return v
		}
		v := map[int64]bool{}
		for _, row := range r.world.Addresses(d) {
			if row.Verified {
				v[row.ID] = true
			}
		}
		verified[d] = v
		return v
	}
	var leads []float64
	for _, a := range truth {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		at, flagged := r.flagged[a.EmailID]
		tag := fmt.Sprintf("%d@%s", a.EmailID, a.Domain)
		if flagged {
			s.Flagged++
			if a.RiskStart != nil && !at.Before(*a.RiskStart) {
				s.TruePositives++
			} else {
				s.FalsePositives++
				if len(s.FalsePositiveSample) < 10 {
					s.FalsePositiveSample = append(s.FalsePositiveSample, tag)
				}
			}
		}
		if a.RiskStart == nil || a.RiskStart.After(last) {
			continue
		}
		if a.ReregisteredAt != nil && a.ReregisteredAt.Before(first) && (verifiedOn(first)[a.EmailID] || flagged && !at.After(first)) {
			// Another holder had the name before lapse's first night: the
			// registration date tells (domain_reregistered).
			s.ResurrectionsBeforeStart++
			if flagged && !at.After(first.Add(24*time.Hour)) {
				s.ResurrectionsBeforeStartCaught++
			} else if len(s.MissedBeforeStartSample) < 10 {
				s.MissedBeforeStartSample = append(s.MissedBeforeStartSample, tag)
			}
		}
		if a.RegistrableAt != nil && a.RegistrableAt.Before(first) {
			continue // registrable before lapse's first night: not in recall
		}
		d0 := *a.RiskStart
		if d0.Before(first) {
			d0 = first
		}
		if !verifiedOn(d0)[a.EmailID] && !(flagged && !at.After(d0)) {
			continue // not a verified address while at risk
		}
		if !flagged && (a.RegistrableAt == nil || a.RegistrableAt.After(last)) {
			// Not flagged yet, but nobody else can register the name yet
			// either: undecided when the demo ends.
			s.Pending++
			continue
		}
		s.AtRisk++
		inTime := flagged && (a.RegistrableAt == nil || !at.After(*a.RegistrableAt))
		if inTime {
			s.CaughtInTime++
			if a.RegistrableAt != nil {
				leads = append(leads, a.RegistrableAt.Sub(at).Hours()/24)
			}
		} else if len(s.MissedSample) < 10 {
			s.MissedSample = append(s.MissedSample, tag)
		}
		if a.ReregisteredAt != nil && !a.ReregisteredAt.Before(first) && !a.ReregisteredAt.After(last) {
			s.Resurrections++
			if flagged && !at.After(a.ReregisteredAt.Add(24*time.Hour)) {
				s.ResurrectionsCaught++
			}
		}
	}
	s.Precision, s.Recall = 1, 1
	if s.Flagged > 0 {
		s.Precision = float64(s.TruePositives) / float64(s.Flagged)
	}
	if s.AtRisk > 0 {
		s.Recall = float64(s.CaughtInTime) / float64(s.AtRisk)
	}
	s.LeadDaysMedian = median(leads)
	return s, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
