package night

import (
	"path/filepath"

	"github.com/lapse-dev/lapse/config"
)

// Dir is a data dir (config data_dir): the files that belong to no one
// night, and the roots of the nights' folders.
type Dir string

// DB is the lifecycle database.
func (d Dir) DB() string { return d.join("lapse.duckdb") }

// Lock is the run lock: one lapse run per data dir.
func (d Dir) Lock() string { return d.join("lapse.lock") }

// Metrics is the Prometheus textfile written after every night.
func (d Dir) Metrics() string { return d.join("metrics.prom") }

// Cache is the Badger cache's default folder (CacheDir).
func (d Dir) Cache() string { return d.join("cache") }

// StatesDir holds the cache's states copy.
func (d Dir) StatesDir() string { return d.join("states") }

// StatesCopy is the cache's states as Parquet (every entry), rewritten
// only when the cache changed since; states.json beside it (the same name,
// .json) holds the change token it was read at.
func (d Dir) StatesCopy() string { return d.join("states", "states.parquet") }

// LinksCopy is the mail path of every address domain the DNS stage
// checked (issue 12): one row per link (address domain → MX or NS host →
// its registrable domain), or one row with no link for a domain without
// any out-of-bailiwick host. It is rewritten after a night's DNS lookups
// (cache.ExportLinks).
func (d Dir) LinksCopy() string { return d.join("states", "links.parquet") }

// MailSchedule is LinksCopy folded per address domain (its latest next
// check and lookup, its dependency domains), with mail_schedule.json
// naming the copy it was folded from: what the dns and plan stages read.
func (d Dir) MailSchedule() string { return d.join("states", "mail_schedule.parquet") }

// Snapshots, Observations, Decisions and Runs hold one Hive folder per
// night; Changesets and Reports one folder named by the date.
func (d Dir) Snapshots() string    { return d.join("snapshots") }
func (d Dir) Observations() string { return d.join("observations") }
func (d Dir) Decisions() string    { return d.join("decisions") }
func (d Dir) Runs() string         { return d.join("runs") }
func (d Dir) Changesets() string   { return d.join("changesets") }
func (d Dir) Reports() string      { return d.join("reports") }

// Night is the files of night date under the data dir.
func (d Dir) Night(date string) Paths { return Paths{DataDir: string(d), Date: date} }

func (d Dir) join(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// CacheDir is the Badger cache: config cache.dir, else the data dir's
// cache/.
func CacheDir(c config.Config) string {
	if c.Cache.Dir != "" {
		return c.Cache.Dir
	}
	return Dir(c.DataDir).Cache()
}

// Paths names one night's files under the data dir. The stages take their
// inputs and outputs from it (through the runner); nothing else spells a
// night's file names.
type Paths struct {
	DataDir string
	Date    string // YYYY-MM-DD
}

func (p Paths) root() Dir { return Dir(p.DataDir) }

// SnapshotDir is the folder of the night's snapshot (Snapshot and
// SnapshotManifest).
func (p Paths) SnapshotDir() string { return filepath.Join(p.root().Snapshots(), Hive+p.Date) }

// Snapshot is the night's snapshot of addresses (0600).
func (p Paths) Snapshot() string { return filepath.Join(p.SnapshotDir(), SnapshotFile) }

// SnapshotFile is the snapshot's name in its folder (the snapshot
// manifest's file field).
const SnapshotFile = "emails.parquet"

// SnapshotDomains is the snapshot's distinct registrable domains, sorted
// (one column, domain), written with it when it holds verified addresses
// only: the dns and plan stages read it instead of every address.
func (p Paths) SnapshotDomains() string { return filepath.Join(p.SnapshotDir(), "domains.parquet") }

// SnapshotManifest describes Snapshot: rows, sha256, source, timings.
func (p Paths) SnapshotManifest() string { return filepath.Join(p.SnapshotDir(), "manifest.json") }

// SnapshotGlob matches every night's snapshot (first-seen history).
func (p Paths) SnapshotGlob() string {
	return filepath.Join(p.root().Snapshots(), Hive+"*", SnapshotFile)
}

// ObservationsDir holds the night's plan, journal and lookups.
func (p Paths) ObservationsDir() string {
	return filepath.Join(p.root().Observations(), Hive+p.Date)
}

// Plan is the night's lookup plan, kept so a resumed night resolves the
// same domains.
func (p Paths) Plan() string { return filepath.Join(p.ObservationsDir(), "plan.json") }

// Journal is resolve's journal: every lookup of the night, appended as it
// is answered (a resumed resolve reads it).
func (p Paths) Journal() string { return filepath.Join(p.ObservationsDir(), "lookups.jsonl") }

// Domains holds the night's lookups (one row per domain looked up).
func (p Paths) Domains() string { return filepath.Join(p.ObservationsDir(), "domains.parquet") }

// States is the night's hard link to the states copy classify read.
func (p Paths) States() string { return filepath.Join(p.ObservationsDir(), "states.parquet") }

// Links is the links copy classify read (a hard link to Dir.LinksCopy, as
// States is to the states copy); DNS holds tonight's DNS answers and
// DNSJournal the journal a killed night resumes from.
func (p Paths) Links() string      { return filepath.Join(p.ObservationsDir(), "links.parquet") }
func (p Paths) DNS() string        { return filepath.Join(p.ObservationsDir(), "dns.parquet") }
func (p Paths) DNSJournal() string { return filepath.Join(p.ObservationsDir(), "dns.jsonl") }

// Reverified holds (email_id, reverified_at) of every address its owner
// verified again after an applied changeset un-verified it, as the
// lifecycle database knew them when the night was planned.
func (p Paths) Reverified() string { return filepath.Join(p.ObservationsDir(), "reverified.parquet") }

// DecisionsDir holds classify's output.
func (p Paths) DecisionsDir() string { return filepath.Join(p.root().Decisions(), Hive+p.Date) }

// Decisions is classify's decisions: one row per address whose action is
// not keep (0600).
func (p Paths) Decisions() string { return filepath.Join(p.DecisionsDir(), "decisions.parquet") }

// FirstSeen holds (email_id, first_seen) of every address seen so far:
// the first-seen history the next night reads (0600).
func (p Paths) FirstSeen() string { return filepath.Join(p.DecisionsDir(), "first_seen.parquet") }

// Counts holds classify's counts over every address, so a resumed night
// publishes without reading every row again.
func (p Paths) Counts() string { return filepath.Join(p.DecisionsDir(), "counts.json") }

// Changeset is the folder of the night's changeset (its files are named
// by sinks/changeset).
func (p Paths) Changeset() string { return filepath.Join(p.root().Changesets(), p.Date) }

// ReportDir is the folder of the night's report.
func (p Paths) ReportDir() string { return filepath.Join(p.root().Reports(), p.Date) }

// Report is the night's HTML report.
func (p Paths) Report() string { return filepath.Join(p.ReportDir(), "index.html") }

// RunDir holds the run manifest.
func (p Paths) RunDir() string { return filepath.Join(p.root().Runs(), Hive+p.Date) }

// Manifest is the night's run manifest: stages, timings and figures.
func (p Paths) Manifest() string { return filepath.Join(p.RunDir(), "manifest.json") }

// Folders are the night's own folders, and the data dir's where a killed
// run may leave temp files (the runner's clean-up).
func (p Paths) Folders() []string {
	return []string{
		p.DataDir, p.root().StatesDir(), p.SnapshotDir(), p.ObservationsDir(),
		p.DecisionsDir(), p.Changeset(), p.ReportDir(), p.RunDir(),
	}
}
