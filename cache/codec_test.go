package cache

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lapse-dev/lapse/lifecycle"
)

// codecEntries are entries that exercise every field and the edges where
// JSON and a naive binary encoding part: nil against empty lists, nil
// against zero times, zone offsets, invalid UTF-8, monotonic clock
// readings, evidence without a delegation flag.
func codecEntries() []Entry {
	at := ts("2026-03-10T02:00:00Z")
	paris := time.FixedZone("CET", 3600)
	odd := time.FixedZone("", -(3*3600 + 30*60))
	local := time.Date(2024, 5, 6, 7, 8, 9, 10, time.Local)
	reg := time.Date(2015, 6, 1, 10, 0, 0, 123456789, paris)
	zero := time.Time{}
	f, tr := false, true
	var es []Entry
	for _, lc := range []lifecycle.Lifecycle{
		answer("example.com", lifecycle.Registered, at),
		answer("gone.net", lifecycle.Available, at.In(paris)),
		failure("fail.org", at, "rdap: timeout \xff\xfe bad bytes"),
		{},
		{Domain: "e.com", State: lifecycle.Expiring, Statuses: []string{}, Evidence: []lifecycle.Evidence{}, Delegated: &f,
			RegisteredAt: &reg, ExpiresAt: &zero, LastChanged: &local, CheckedAt: time.Now(), AsOf: at.In(odd)},
		{Domain: "ü.de", State: lifecycle.Redemption, Source: lifecycle.SourceDomainr, Statuses: []string{"redemption", ""},
			Evidence: []lifecycle.Evidence{{}, {Source: lifecycle.SourceFastly, Statuses: []string{}, Delegated: &tr,
				RegisteredAt: &zero, ExpiresAt: &reg, Server: "api.example", CheckedAt: local, Error: "x"}}},
	} {
		e := merge(Entry{}, false, NormalizeDomain(lc.Domain), lc, at)
		es = append(es, e)
		e2 := e
		e2.Lifecycle = lc
		e2.LastError, e2.ConsecutiveErrors, e2.DecisiveNights, e2.Unverified = "\x80", -3, 1<<40, true
		e2.KnownRegisteredAt, e2.PreviousRegisteredAt, e2.RegisteredAtChangedAt, e2.DecisiveSince = &reg, &zero, &local, &reg
		e2.FirstCheckedAt, e2.LastCheckedAt, e2.NextCheck = zero, local, time.Now()
		es = append(es, e2)
	}
	return append(es, Entry{})
}

// TestCodecV2ReadsAsJSON holds the binary encoding to the JSON one: every
// entry decodes to exactly what its JSON decodes to.
func TestCodecV2ReadsAsJSON(t *testing.T) {
	for _, e := range codecEntries() {
		j, err := encodeV1(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decode([]byte("k"), j)
		if err != nil {
			t.Fatal(err)
		}
		b, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != encodingV2 {
			t.Fatalf("encode writes version %d, want %d", b[0], encodingV2)
		}
		got, err := decode([]byte("k"), b)
		if err != nil {
			t.Fatalf("%s: %v", e.Domain, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: binary decodes to\n%+v\nJSON to\n%+v", e.Domain, got, want)
		}
		if len(b) >= len(j) {
			t.Errorf("%q: binary %d bytes, JSON %d: not compact", e.Domain, len(b), len(j))
		}
	}
}

// TestCodecV2Truncated: every cut of a value is an error, never a panic
// or a silently partial entry.
func TestCodecV2Truncated(t *testing.T) {
	for _, e := range codecEntries() {
		b, _ := encode(e)
		for n := 1; n < len(b); n++ {
			if _, err := decode([]byte("k"), b[:n]); err == nil {
				t.Fatalf("%q cut at %d of %d decoded without error", e.Domain, n, len(b))
			}
		}
		if _, err := decode([]byte("k"), append(b, 0)); err == nil {
			t.Fatalf("%q with a trailing byte decoded without error", e.Domain)
		}
	}
}

// FuzzCodecV2 checks that any value decodes without panicking and that
// what decodes re-encodes to the same entry.
func FuzzCodecV2(f *testing.F) {
	for _, e := range codecEntries() {
		b, _ := encode(e)
		f.Add(b[1:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeV2(b)
		if err != nil {
			return
		}
		again, err := decodeV2(encodeV2(e)[1:])
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, e) && !reflect.DeepEqual(encodeV2(again), encodeV2(e)) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, again)
		}
	})
}

// TestMigrateV1 opens a cache whose values an earlier lapse wrote in JSON:
// a read-only Open reads them as they are, a writable Open rewrites them
// all in encodingV2 once, and every entry reads the same before and after.
func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, dir, clk)
	ctx := context.Background()
	var domains []string
	for i := range 2500 {
		d := fmt.Sprintf("m%04d.com", i)
		if _, err := c.Record(ctx, answer(d, lifecycle.Registered, clk.Now())); err != nil {
			t.Fatal(err)
		}
		domains = append(domains, d)
	}
	want, err := c.GetMany(ctx, domains)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the cache into one an earlier lapse wrote: V1 values, no marker.
	err = c.db.Update(func(txn *badger.Txn) error {
		for _, e := range want {
			v, err := encodeV1(e)
			if err != nil {
				return err
			}
			if err := txn.Set(key(e.Domain), v); err != nil {
				return err
			}
		}
		return txn.Delete([]byte(metaEncoding))
	})
	if err != nil {
		t.Fatal(err)
	}
	versions := func(c *Cache) map[byte]int {
		n := map[byte]int{}
		c.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyPrefix)})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				it.Item().Value(func(v []byte) error { n[v[0]]++; return nil })
			}
			return nil
		})
		return n
	}
	if n := versions(c); n[encodingV1] != len(domains) {
		t.Fatalf("setup: versions %v", n)
	}
	c.Close()

	ro, err := Open(dir, Options{Now: clk.Now, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ro.GetMany(ctx, domains)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("read-only Open reads V1 entries differently")
	}
	if n := versions(ro); n[encodingV1] != len(domains) {
		t.Fatalf("read-only Open rewrote entries: versions %v", n)
	}
	ro.Close()

	c = openTest(t, dir, clk)
	if n := versions(c); n[encodingV2] != len(domains) || len(n) != 1 {
		t.Fatalf("after a writable Open: versions %v, want all %d", n, encodingV2)
	}
	if got, err = c.GetMany(ctx, domains); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("migrated entries read differently (err %v)", err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Entries != len(domains) {
		t.Fatalf("stats after migration: %d entries, err %v", st.Entries, err)
	}
}
