package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// planMark starts a journal line that marks a new plan (StartJournalSegment):
// the lines before it are lookups of earlier plans of the night. It has no
// "domain", so a reader of lookups ignores it.
const planMark = `{"lapse_plan":`

// journalMark is the plan mark's line.
type journalMark struct {
	Plan struct {
		AsOf    time.Time `json:"as_of"`
		Lookups int       `json:"lookups"`
	} `json:"lapse_plan"`
}

// StartJournalSegment marks in the night's journal that a new plan was
// made: a resolve of it resumes only from the answers after the mark, and
// keeps those before it as the night's earlier lookups. A missing or empty
// journal needs no mark; a mark with no lookup after it (a plan made again
// before resolve began) is replaced, so the file is the same as if the
// plan had been made once.
func StartJournalSegment(path string, p Plan) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	// The last line, from the tail of the file: a mark is short, so a last
	// line longer than the tail is a lookup.
	tail := make([]byte, min(size, 4096))
	tailAt := size - int64(len(tail))
	if _, err := f.ReadAt(tail, tailAt); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	torn := tail[len(tail)-1] != '\n'
	body := tail
	if !torn {
		body = tail[:len(tail)-1]
	}
	end := size // where the mark goes
	if i := bytes.LastIndexByte(body, '\n'); i >= 0 || tailAt == 0 {
		if bytes.HasPrefix(body[i+1:], []byte(planMark)) {
			end = tailAt + int64(i+1) // replace the lone mark
		}
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	var m journalMark
	m.Plan.AsOf, m.Plan.Lookups = p.AsOf.UTC(), len(p.Lookups)
	mark, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	line := append(mark, '\n')
	if end == size && torn {
		// A torn last line (a kill while writing): end it, so the mark is
		// a line of its own.
		line = append([]byte{'\n'}, line...)
	}
	if _, err := f.WriteAt(line, end); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// nightJournal is what the journal says of the night's lookups.
type nightJournal struct {
	// current is the answers after the last plan mark, failed lookups left
	// out (they are asked again): a resumed resolve's done set.
	current map[string]lifecycle.Lifecycle
	// earlier is the answers before it, the latest per domain, failures
	// included: lookups of earlier plans of the night.
	earlier map[string]lifecycle.Lifecycle
	// prefix is the length of the file up to and including the last mark.
	prefix int64
}

// readJournal reads tonight's answered lookups from the journal; a torn
// last line (a kill while writing) is ignored, as the answer it held was
// not recorded either.
func readJournal(path string) (nightJournal, error) {
	j := nightJournal{current: map[string]lifecycle.Lifecycle{}, earlier: map[string]lifecycle.Lifecycle{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return j, fmt.Errorf("resolve: open journal: %w", err)
	}
	defer f.Close()
	seg := map[string]lifecycle.Lifecycle{}
	var off int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		off += int64(len(line)) + 1
		if bytes.HasPrefix(line, []byte(planMark)) {
			for d, lc := range seg {
				j.earlier[d] = lc
			}
			seg = map[string]lifecycle.Lifecycle{}
			j.prefix = off
			continue
		}
		var lc lifecycle.Lifecycle
		if err := json.Unmarshal(line, &lc); err != nil || lc.Domain == "" {
			continue
		}
		seg[lc.Domain] = lc
	}
	if err := sc.Err(); err != nil {
		return j, fmt.Errorf("resolve: read journal %s: %w", path, err)
	}
	for d, lc := range seg {
		// A failed lookup is asked again: the resumed run may be the one
		// after the network or the key was fixed.
		if lc.State == lifecycle.Unknown && lc.Error != "" {
			continue
		}
		j.current[d] = lc
	}
	return j, nil
}
