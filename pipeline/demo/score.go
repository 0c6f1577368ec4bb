package demo

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sinks/changeset"
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
//   - mail_path: the same against the simulator's mail-path truth
//     (MailAtRisk: the address's own domain is fine, an MX host's or name
//     server's domain lapsed or was registered by someone else); see
//     MailPathScore. A flag with a mail-path reason (mx_domain_…,
//     ns_domain_…) on an address MailAtRisk by the night it was flagged
//     is a true positive in precision too.
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

	MailPath MailPathScore `json:"mail_path"`
}

// MailPathScore scores a policy against the mail-path truth, the way
// PolicyScore scores it against the domain truth:
//
//   - at_risk: addresses MailAtRisk by the last night whose dependency was
//     not registrable by others before the first night, verified when
//     their risk started (or already flagged), and either flagged or
//     registrable by others by the last night (the others are pending);
//     caught: those flagged (for any reason) no later than the night the
//     dependency became registrable by others; missed: the rest.
//   - lead_days_median: over those caught whose dependency became
//     registrable during the demo, the median of days from the flag to
//     that date.
//   - flagged: addresses flagged with a mail-path reason; true_flags those
//     MailAtRisk or ShouldFlag by the night they were flagged;
//     false_flags the rest; precision true_flags / flagged (1 when none),
//     recall caught / at_risk (1 when none).
type MailPathScore struct {
	AtRisk         int     `json:"at_risk"`
	Caught         int     `json:"caught"`
	Missed         int     `json:"missed"`
	Pending        int     `json:"pending"`
	Flagged        int     `json:"flagged"`
	TrueFlags      int     `json:"true_flags"`
	FalseFlags     int     `json:"false_flags"`
	LeadDaysMedian float64 `json:"lead_days_median"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	// Samples name a few misses and false flags (email_id@domain).
	MissedSample    []string `json:"missed_sample"`
	FalseFlagSample []string `json:"false_flag_sample"`
}

// Score is score.json: one PolicyScore per policy run.
type Score map[string]PolicyScore

func scorePolicy(ctx context.Context, o Options, r *policyRun) (PolicyScore, error) {
	s := PolicyScore{Lookups: r.lookups, LookupsBySource: r.bySource, Nights: o.Nights, BlockedNights: r.blocked, Reverified: r.reverified, ReflagLoops: r.loops, MissedSample: []string{}, FalsePositiveSample: []string{}, MissedBeforeStartSample: []string{}}
	s.MailPath = MailPathScore{MissedSample: []string{}, FalseFlagSample: []string{}}
	mp := &s.MailPath
	first := o.Start
	last := o.Start.AddDate(0, 0, o.Nights-1)
	truth := r.world.AddressTruth(last)
	reasons, err := flagReasons(r)
	if err != nil {
		return s, err
	}
	// truthOn memoizes the address truth of the nights mail-path flags
	// were raised on (an address's own domain may lapse later, which ends
	// its mail-path risk in the last night's truth).
	truths := map[time.Time]map[int64]sim.AddressTruth{}
	truthOn := func(d time.Time) map[int64]sim.AddressTruth {
		if v, ok := truths[d]; ok {
			return v
		}
		v := map[int64]sim.AddressTruth{}
		for _, t := range r.world.AddressTruth(d) {
			v[t.EmailID] = t
		}
		truths[d] = v
		return v
	}
	// riskBy reports whether a was at risk by date, for its domain or
	// (mail) through its mail path.
	riskBy := func(a sim.AddressTruth, at time.Time, mail bool) bool {
		return a.RiskStart != nil && !at.Before(*a.RiskStart) || mail && a.MailAtRisk && a.MailRiskStart != nil && !at.Before(*a.MailRiskStart)
	}
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
	var leads, mailLeads []float64
	for _, a := range truth {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		at, flagged := r.flagged[a.EmailID]
		tag := fmt.Sprintf("%d@%s", a.EmailID, a.Domain)
		if flagged {
			mail := reasons[a.EmailID].MailPath()
			ok := riskBy(a, at, mail)
			if !ok && mail {
				ok = riskBy(truthOn(at)[a.EmailID], at, true)
			}
			s.Flagged++
			if ok {
				s.TruePositives++
			} else {
				s.FalsePositives++
				if len(s.FalsePositiveSample) < 10 {
					s.FalsePositiveSample = append(s.FalsePositiveSample, tag)
				}
			}
			if mail {
				mp.Flagged++
				if ok {
					mp.TrueFlags++
				} else {
					mp.FalseFlags++
					if len(mp.FalseFlagSample) < 10 {
						mp.FalseFlagSample = append(mp.FalseFlagSample, tag)
					}
				}
			}
		}
		if a.MailAtRisk && a.MailRiskStart != nil && !a.MailRiskStart.After(last) &&
			(a.MailRegistrableAt == nil || !a.MailRegistrableAt.Before(first)) {
			// the mail path's recall, as the domain's below
			d0 := *a.MailRiskStart
			if d0.Before(first) {
				d0 = first
			}
			switch {
			case !verifiedOn(d0)[a.EmailID] && !(flagged && !at.After(d0)):
				// not a verified address while at risk
			case !flagged && (a.MailRegistrableAt == nil || a.MailRegistrableAt.After(last)):
				mp.Pending++
			default:
				mp.AtRisk++
				if flagged && (a.MailRegistrableAt == nil || !at.After(*a.MailRegistrableAt)) {
					mp.Caught++
					if a.MailRegistrableAt != nil {
						mailLeads = append(mailLeads, a.MailRegistrableAt.Sub(at).Hours()/24)
					}
				} else {
					mp.Missed++
					if len(mp.MissedSample) < 10 {
						mp.MissedSample = append(mp.MissedSample, tag+" via "+strings.Join(a.MailVia, ","))
					}
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
	s.Precision, s.Recall = share(s.TruePositives, s.Flagged), share(s.CaughtInTime, s.AtRisk)
	s.LeadDaysMedian = median(leads)
	mp.Precision, mp.Recall = share(mp.TrueFlags, mp.Flagged), share(mp.Caught, mp.AtRisk)
	mp.LeadDaysMedian = median(mailLeads)
	return s, nil
}

// share is part / of, 1 when of is 0 (no flag is a precision of 1, no
// address at risk a recall of 1).
func share(part, of int) float64 {
	if of == 0 {
		return 1
	}
	return float64(part) / float64(of)
}

// flagReasons returns the reason each flagged address was un-verified
// for: its row in the changeset of the night it was first flagged
// (changeset.csv). A night without a changeset file gives none.
func flagReasons(r *policyRun) (map[int64]lifecycle.Reason, error) {
	byNight := map[time.Time][]int64{}
	for id, at := range r.flagged {
		byNight[at] = append(byNight[at], id)
	}
	out := make(map[int64]lifecycle.Reason, len(r.flagged))
	for at, ids := range byNight {
		p := filepath.Join(night.Paths{DataDir: r.dir, Date: at.Format(time.DateOnly)}.Changeset(), changeset.FileCSV)
		rows, err := readReasons(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("demo: score: %w", err)
		}
		for _, id := range ids {
			if reason, ok := rows[id]; ok {
				out[id] = reason
			}
		}
	}
	return out, nil
}

// readReasons reads email_id → reason from a changeset.csv.
func readReasons(path string) (map[int64]lifecycle.Reason, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	idCol, reasonCol := slices.Index(head, "email_id"), slices.Index(head, "reason")
	if idCol < 0 || reasonCol < 0 {
		return nil, fmt.Errorf("%s: no email_id or reason column in %v", path, head)
	}
	out := map[int64]lifecycle.Reason{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		id, err := strconv.ParseInt(rec[idCol], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: email_id %q: %w", path, rec[idCol], err)
		}
		out[id] = lifecycle.Reason(rec[reasonCol])
	}
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
