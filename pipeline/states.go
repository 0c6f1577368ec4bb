package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
)

// The cache's states as Parquet (night.Dir.StatesCopy): every entry of the
// cache, with the change token it was written at beside it (the same name,
// .json: statesMetaPath). Resolve owns it: it is made current before the
// plan (planOverStates) and after resolve's lookups, by CurrentStates
// alone. Plan and classify read the domains' states from it with
// DuckDB instead of decoding every Badger entry every night; it is
// rewritten only when the cache changed since (cache.ChangeToken), which a
// warm night never does. Each night keeps the copy its classify read as
// observations/date=D/states.parquet (a hard link: the copy is replaced by
// rename, never written in place).

// statesMeta is states.json: what the copy beside it holds.
type statesMeta struct {
	// Token is the cache's change token the copy was read at.
	Token     string    `json:"token"`
	Rows      int       `json:"rows"`
	WrittenAt time.Time `json:"written_at"`
}

// statesMetaPath is the states.json of the copy at path.
func statesMetaPath(path string) string {
	return path[:len(path)-len(filepath.Ext(path))] + ".json"
}

// StatesCache is what the states copy needs of the cache (*cache.Cache).
type StatesCache interface {
	ChangeToken(ctx context.Context) (string, error)
	ScanToken(ctx context.Context, fn func(cache.Entry) error) (string, error)
}

// StatesCopy is a current copy of the cache's states.
type StatesCopy struct {
	Path string
	Rows int
	// Reused: the copy was already current; nothing was written.
	Reused bool
}

// CurrentStates returns the states copy at path, rewriting it first from
// the cache when the cache changed since it was written (or it is missing
// or unreadable). The copy is written before its states.json, so a crash
// between the two leaves a token that no longer matches: it is rewritten.
func CurrentStates(ctx context.Context, c StatesCache, path string) (StatesCopy, error) {
	out := StatesCopy{Path: path}
	tok, err := c.ChangeToken(ctx)
	if err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	if m, ok := readStatesMeta(path); ok && tok != "" && m.Token == tok {
		if _, err := os.Stat(path); err == nil {
			out.Rows, out.Reused = m.Rows, true
			return out, nil
		}
	}
	return rewriteStates(ctx, c, path)
}

// rewriteStates writes the states copy at path from the cache, then its
// states.json, whatever the token says.
func rewriteStates(ctx context.Context, c StatesCache, path string) (StatesCopy, error) {
	out := StatesCopy{Path: path}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	n, read, err := cache.ExportStates(ctx, c, path)
	if err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	b, err := json.Marshal(statesMeta{Token: read, Rows: n, WrittenAt: time.Now().UTC()})
	if err != nil {
		return out, err
	}
	if err := atomicfile.WriteFile(statesMetaPath(path), append(b, '\n'), 0o640); err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	out.Rows = n
	return out, nil
}

func readStatesMeta(path string) (statesMeta, bool) {
	var m statesMeta
	b, err := os.ReadFile(statesMetaPath(path))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	return m, true
}

// linkStates makes dst the same file as the states copy src (a hard link,
// replacing dst atomically), or a copy where links are not possible.
func linkStates(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("states: %w", err)
	}
	if sameFile(src, dst) {
		// Already the link: rename(2) between two links of one file does
		// nothing and succeeds, which would leave the temp link behind.
		return nil
	}
	tmp := dst + ".link"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("states: %w", err)
		}
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("states: %w", err)
	}
	defer f.Close()
	err = atomicfile.WriteFrom(dst, 0o640, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("states: copy %s: %w", src, err)
	}
	return nil
}

// sameFile reports whether a and b are the same file (one inode).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
