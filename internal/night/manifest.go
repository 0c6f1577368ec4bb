package night

import "time"

// Outcomes of a run and of each of its stages, in the run manifest and in
// the lifecycle database's runs and stages tables.
const (
	OutcomeRunning = "running"
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	// OutcomeBlocked: done, but the safety brake held the changeset.
	OutcomeBlocked = "blocked"
	// OutcomeDegraded: done and published, but too many of the night's
	// domains are unknown (resolve.max_unknown_fraction).
	OutcomeDegraded = "degraded"
)

// StageRecord is one stage of a run: its line in the run manifest and its
// row in the lifecycle database's stages table.
type StageRecord struct {
	Stage      string    `json:"stage"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	RowsIn     int64     `json:"rows_in"`
	RowsOut    int64     `json:"rows_out"`
	Outcome    string    `json:"outcome"` // OutcomeOK, OutcomeFailed or OutcomeBlocked
	Error      string    `json:"error,omitempty"`
}

// Manifest is the run manifest (Paths.Manifest): the night's stages, its
// figures and how it ended.
type Manifest struct {
	Date     string        `json:"date"`
	Outcome  string        `json:"outcome"` // running, ok, blocked, degraded, failed
	Policy   string        `json:"policy"`
	Stages   []StageRecord `json:"stages"`
	Figures  Figures       `json:"figures"`
	Attempts int           `json:"attempts"`
}

// Stage is the record of stage name, nil when the night has none.
func (m *Manifest) Stage(name string) *StageRecord {
	for i := range m.Stages {
		if m.Stages[i].Stage == name {
			return &m.Stages[i]
		}
	}
	return nil
}

// SetStage replaces the record of r's stage, or adds it.
func (m *Manifest) SetStage(r StageRecord) {
	if s := m.Stage(r.Stage); s != nil {
		*s = r
		return
	}
	m.Stages = append(m.Stages, r)
}

// Finished reports whether the night ended with its changeset written
// (blocked and degraded nights included).
func (m Manifest) Finished() bool {
	return m.Outcome == OutcomeOK || m.Outcome == OutcomeBlocked || m.Outcome == OutcomeDegraded
}
