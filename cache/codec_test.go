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

// TestCodecReadsAsJSON holds the binary encoding to the JSON one: every
// entry decodes to exactly what its JSON decodes to.
func TestCodecReadsAsJSON(t *testing.T) {
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
		if b[0] != encodingV3 {
			t.Fatalf("encode writes version %d, want %d", b[0], encodingV3)
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

// TestCodecTruncated: every cut of a value is an error, never a panic
// or a silently partial entry.
func TestCodecTruncated(t *testing.T) {
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

// FuzzCodec checks that any value decodes without panicking and that
// what decodes re-encodes to the same entry.
func FuzzCodec(f *testing.F) {
	for _, e := range codecEntries() {
		b, _ := encode(e)
		f.Add(b[1:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeV3(b)
		if err != nil {
			return
		}
		again, err := decodeV3(encodeV3(e)[1:])
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, e) && !reflect.DeepEqual(encodeV3(again), encodeV3(e)) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, again)
		}
		if _, err := decodeV2(b); err == nil && len(b) > 0 {
			// A V2 body is a V3 body cut short: never both.
			if _, err3 := decodeV3(b); err3 == nil {
				t.Fatalf("a value decodes as both V2 and V3")
			}
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
	setValues(t, c, want, func(e Entry) []byte { v, _ := encodeV1(e); return v })
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
	if n := versions(c); n[encodingV3] != len(domains) || len(n) != 1 {
		t.Fatalf("after a writable Open: versions %v, want all %d", n, encodingV3)
	}
	if got, err = c.GetMany(ctx, domains); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("migrated entries read differently (err %v)", err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Entries != len(domains) {
		t.Fatalf("stats after migration: %d entries, err %v", st.Entries, err)
	}
}

// versions counts the cache's values by encoding version.
func versions(c *Cache) map[byte]int {
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

// setValues writes entries as enc encodes them and deletes the encoding
// marker: the cache an earlier lapse left.
func setValues(t *testing.T, c *Cache, es []Entry, enc func(Entry) []byte) {
	t.Helper()
	for start := 0; start < len(es); start += 500 {
		err := c.db.Update(func(txn *badger.Txn) error {
			for _, e := range es[start:min(start+500, len(es))] {
				if err := txn.Set(key(e.Domain), enc(e)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(metaEncoding)) }); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateV2 opens a cache the lapse before issue 11 wrote (V2 values,
// no authoritative facts): a writable Open rewrites every value in V3
// once, with the facts derived from the kept answer's evidence: an RDAP
// answer gives the date it answered and its dates, a Domainr-only one
// leaves the domain without an authoritative answer (its refresh is due)
// and keeps Domainr's flags; a read-only Open reads the same without
// rewriting.
func TestMigrateV2(t *testing.T) {
	dir := t.TempDir()
	at := ts("2026-03-10T02:00:00Z")
	clk := &clock{t: at}
	c := openTest(t, dir, clk)
	ctx := context.Background()
	rdapAnswer := answer("rdap.com", lifecycle.Registered, at)
	domainrAnswer := lifecycle.Lifecycle{Domain: "domainr.com", State: lifecycle.Registered, Source: lifecycle.SourceDomainr,
		Statuses: []string{"active"}, CheckedAt: at, AsOf: at,
		Evidence: []lifecycle.Evidence{{Source: lifecycle.SourceDomainr, State: lifecycle.Registered, Statuses: []string{"active"}, CheckedAt: at}}}
	var old []Entry
	for _, lc := range []lifecycle.Lifecycle{rdapAnswer, domainrAnswer, failure("fail.org", at, "rdap: timeout")} {
		e, err := c.Record(ctx, lc)
		if err != nil {
			t.Fatal(err)
		}
		// What the lapse before kept: no facts of issue 11.
		e.AuthCheckedAt, e.AuthSource, e.AuthState, e.AuthRegisteredAt, e.AuthExpiresAt, e.AuthFailures, e.AuthRetryAt = nil, "", "", nil, nil, 0, nil
		e.StatusSource, e.StatusFlags, e.StatusCheckedAt = "", nil, nil
		old = append(old, e)
	}
	setValues(t, c, old, encodeV2)
	before, err := c.ChangeToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	check := func(c *Cache) {
		t.Helper()
		got, err := c.GetMany(ctx, []string{"domainr.com", "fail.org", "rdap.com"})
		if err != nil {
			t.Fatal(err)
		}
		d, f, r := got[0], got[1], got[2]
		if r.AuthCheckedAt == nil || !r.AuthCheckedAt.Equal(at) || r.AuthSource != lifecycle.SourceRDAP || r.AuthState != lifecycle.Registered ||
			r.AuthExpiresAt == nil || !r.AuthExpiresAt.Equal(ts("2027-06-01T10:00:00Z")) || r.AuthRegisteredAt == nil || !r.AuthRegisteredAt.Equal(ts("2015-06-01T10:00:00Z")) {
			t.Errorf("rdap entry: %+v", r)
		}
		if d.AuthCheckedAt != nil || d.StatusSource != lifecycle.SourceDomainr || !reflect.DeepEqual(d.StatusFlags, []string{"active"}) || d.StatusCheckedAt == nil {
			t.Errorf("domainr entry: %+v", d)
		}
		if !(Refresh{}).Due(d, true, at.Add(Day)) || (Refresh{}).Due(r, true, at.Add(Day)) {
			t.Error("refresh: want due for the Domainr-only entry, not for the RDAP one")
		}
		if f.AuthCheckedAt != nil || f.AuthFailures != 0 || f.StatusCheckedAt != nil {
			t.Errorf("failed entry: %+v", f)
		}
	}
	ro, err := Open(dir, Options{Now: clk.Now, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(ro)
	if n := versions(ro); n[encodingV2] != 3 {
		t.Fatalf("read-only Open rewrote entries: versions %v", n)
	}
	ro.Close()
	c = openTest(t, dir, clk)
	if n := versions(c); n[encodingV3] != 3 || len(n) != 1 {
		t.Fatalf("after a writable Open: versions %v, want all %d", n, encodingV3)
	}
	check(c)
	// A states copy written before the migration lacks the facts: the
	// change token says the cache changed.
	if after, err := c.ChangeToken(ctx); err != nil || after == before {
		t.Errorf("change token %q after the migration, %q before (err %v)", after, before, err)
	}
}
