package changeset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
)

func TestBrake(t *testing.T) {
	for _, tc := range []struct {
		name              string
		b                 config.BrakeConfig
		flagged, verified int64
		protected         []string
		want              string // "" = passes
	}{
		{"under the fraction", config.BrakeConfig{MaxFraction: 0.005}, 5, 1000, nil, ""},
		{"over the fraction", config.BrakeConfig{MaxFraction: 0.005}, 6, 1000, nil, "max_fraction"},
		{"fraction 0 disables", config.BrakeConfig{}, 600, 1000, nil, ""},
		{"nothing verified", config.BrakeConfig{MaxFraction: 0.005}, 0, 0, nil, ""},
		{"at the count", config.BrakeConfig{MaxCount: 10}, 10, 1e6, nil, ""},
		{"over the count", config.BrakeConfig{MaxCount: 10}, 11, 1e6, nil, "max_count 10"},
		{"protected", config.BrakeConfig{}, 1, 1e6, []string{"pypi.org"}, "protected domains: pypi.org"},
	} {
		got := Brake(tc.b, tc.flagged, tc.verified, tc.protected)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: blocked: %v", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: %v, want one reason with %q", tc.name, got, tc.want)
		}
	}
	if got := Brake(config.BrakeConfig{MaxFraction: 0.001, MaxCount: 1}, 5, 10, []string{"a.com"}); len(got) != 3 {
		t.Errorf("all three limits crossed: %v", got)
	}
}

func TestSQLString(t *testing.T) {
	if got := SQLString("it's"); got != "'it''s'" {
		t.Errorf("%s", got)
	}
}

func TestCopyToFailureLeavesPreviousFile(t *testing.T) {
	ctx := context.Background()
	db, err := OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "x.parquet")
	if err := CopyParquet(ctx, db, "SELECT 1 AS a", dest, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(dest)
	if err := CopyParquet(ctx, db, "SELECT * FROM no_such_table", dest, 0o600); err == nil {
		t.Fatal("copy of a bad query succeeded")
	}
	after, _ := os.ReadFile(dest)
	if string(before) != string(after) {
		t.Error("a failed copy changed the file")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries left beside the file, want 1", len(ents))
	}
	fi, _ := os.Stat(dest)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}
