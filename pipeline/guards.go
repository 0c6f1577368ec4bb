package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"slices"
)

// ErrNoSpace is wrapped by the error of a night stopped because its data
// dir had less free space than run.min_free_bytes.
var ErrNoSpace = errors.New("no space left")

// ErrShrunk is wrapped by the error of a night whose snapshot has far fewer
// verified addresses than the previous finished night's
// (run.min_verified_fraction).
var ErrShrunk = errors.New("the snapshot shrank")

// freeBytes is the space an unprivileged process can still write on the
// file system holding path (a variable for the tests).
var freeBytes = func(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// checkFreeSpace stops a night before a stage when the data dir (or a
// cache dir of its own) has less free space than run.min_free_bytes: a
// full disk mid-stage is a crash in the cache's memory-mapped files, not
// an error. 0 disables the check.
func checkFreeSpace(c config.Config) error {
	min := c.Run.MinFreeBytes
	if min <= 0 {
		return nil
	}
	dirs := []string{c.DataDir}
	if c.Cache.Dir != "" {
		dirs = append(dirs, c.Cache.Dir)
	}
	for _, d := range dirs {
		free, err := freeBytes(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a cache dir not made yet: the data dir was checked
		}
		if err != nil {
			return fmt.Errorf("free space of %s: %w", d, err)
		}
		if free < uint64(min) {
			return fmt.Errorf("%w on %s (%d MB free, run.min_free_bytes is %d MB): free space and re-run",
				ErrNoSpace, d, free>>20, min>>20)
		}
	}
	return nil
}

// isStaleTemp reports whether name is a temp file or folder of the atomic
// writers (internal/atomicfile, duck.CopyTo: ".NAME.tmp-DIGITS") or
// classify's spill folder.
func isStaleTemp(name string) bool {
	if name == ".classify-spill" {
		return true
	}
	if strings.HasSuffix(name, ".parquet.link") {
		return true // linkStates' temp link (older lapse left it behind)
	}
	if !strings.HasPrefix(name, ".") {
		return false
	}
	i := strings.LastIndex(name, ".tmp-")
	if i <= 0 || i+len(".tmp-") == len(name) {
		return false
	}
	for _, r := range name[i+len(".tmp-"):] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// removeStaleTemps deletes the temp files a killed run left in tonight's
// folders, the states copy's folder and the data dir itself
// (night.Paths.Folders), and returns how many it deleted. The caller holds
// the data dir's lock, so no other run is writing them. It never walks
// further than those folders.
func removeStaleTemps(p night.Paths) (int, error) {
	dirs := p.Folders()
	n := 0
	var errs []error
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if !isStaleTemp(e.Name()) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// hasHistory reports whether the data dir holds earlier nights: a run
// manifest of any night, or a snapshot of a night other than tonight's
// (`lapse snapshot` may have taken tonight's before the first run).
func hasHistory(data night.Dir, date string) bool {
	if runs, _ := night.Folders(data.Runs(), night.Hive); len(runs) > 0 {
		return true
	}
	snaps, _ := night.Folders(data.Snapshots(), night.Hive)
	return slices.ContainsFunc(snaps, func(d string) bool { return d != date })
}

// warnMissingState says, loudly, when the lifecycle database or the cache
// is missing from a data dir that has earlier nights: both are rebuilt
// empty, and what they held is lost. It runs before either is opened.
func warnMissingState(log *slog.Logger, c config.Config, date string) {
	data := night.Dir(c.DataDir)
	if !hasHistory(data, date) {
		return
	}
	if _, err := os.Stat(data.DB()); errors.Is(err, fs.ErrNotExist) {
		log.Warn("lapse.duckdb was missing: the lifecycle history starts anew (earlier nights' runs, observations, "+
			"decisions, metrics and changeset records are not in it; their files under the data dir are kept)",
			"path", data.DB())
	}
	dir := night.CacheDir(c)
	if ents, err := os.ReadDir(dir); errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
		log.Warn("the domain cache was missing: every domain of the snapshot is looked up again tonight, and the earlier "+
			"answers, re-check schedules, registration-date history and confirmation nights are lost", "dir", dir)
	}
}

// verifySnapshot checks that tonight's snapshot is the file its manifest
// describes (sha256 and size): a resumed night reads it in every stage.
func verifySnapshot(paths night.Paths) error {
	m, err := ReadSnapshotManifest(paths.SnapshotManifest())
	if err != nil {
		return err
	}
	p := paths.Snapshot()
	sum, err := changeset.HashFile(p)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", p, err)
	}
	if m.SHA256 != "" && sum.SHA256 != m.SHA256 {
		return fmt.Errorf("snapshot %s does not match its manifest (sha256 %s, %d bytes; the manifest says %s, %d bytes)",
			p, sum.SHA256, sum.Bytes, m.SHA256, m.Bytes)
	}
	return nil
}

// checkShrink stops a night whose snapshot has fewer verified addresses
// than run.min_verified_fraction of the previous finished night's (its
// changeset's record), unless the run accepts the shrink.
func checkShrink(ctx context.Context, n *nightRun, verified int64) error {
	frac := n.opts.Config.Run.MinVerifiedFraction
	if frac <= 0 || n.opts.AcceptShrink {
		return nil
	}
	prev, ok, err := n.env.db.LastChangeset(ctx, n.opts.Date)
	if err != nil {
		return fmt.Errorf("previous night's verified addresses: %w", err)
	}
	if !ok || prev.Verified <= 0 || float64(verified) >= frac*float64(prev.Verified) {
		return nil
	}
	return fmt.Errorf("%w: %d verified addresses tonight, against %d on night %s (run.min_verified_fraction is %g): "+
		"the export looks empty or partial, so nothing is planned or published. Check the source and run the night again; "+
		"if the accounts really are gone, run it with --accept-shrink",
		ErrShrunk, verified, prev.Verified, prev.Date, frac)
}
