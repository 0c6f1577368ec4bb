// Package night is the vocabulary of one nightly run that the stages, the
// sinks and the commands share without importing pipeline: a night's date
// (Parse, the date folders under a data dir) and the name of every file a
// night writes (Paths, and Dir for the data dir's own files), as
// README.md's "Files on disk" lists them.
package night

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Parse reads a night's date, YYYY-MM-DD (UTC midnight). Every night date
// lapse reads (flags, manifests, folder names) goes through it.
func Parse(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return t, nil
}

// Valid reports whether s is a night's date (Parse).
func Valid(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// Hive is the prefix of a night's folder under snapshots/, observations/,
// decisions/ and runs/ (date=D, hive-partitioned for DuckDB's globs);
// changesets/ and reports/ name theirs D.
const Hive = "date="

// FolderDate is the night a folder name stands for under prefix (Hive or
// ""), "" when it names none.
func FolderDate(name, prefix string) string {
	d, ok := strings.CutPrefix(name, prefix)
	if !ok || !Valid(d) {
		return ""
	}
	return d
}

// Folders lists the nights of root's folders named prefix+D (Hive or ""),
// oldest first. A root that does not exist has none.
func Folders(root, prefix string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if d := FolderDate(e.Name(), prefix); d != "" && e.IsDir() {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}
