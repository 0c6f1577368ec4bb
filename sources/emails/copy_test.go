package emails

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lapse-dev/lapse/config"
)

// copyStream returns the binary COPY stream PostgreSQL sends for the
// default query over seedPG's rows (--all, with a created column), as the
// reader would receive it.
func copyStream(t *testing.T) []byte {
	t.Helper()
	_, conn := seededConn(t)
	pc := config.Default().Postgres
	pc.CreatedColumn = "created"
	var buf bytes.Buffer
	if _, err := conn.PgConn().CopyTo(context.Background(), &buf, "COPY ("+Query(pc, true, true)+") TO STDOUT (FORMAT binary)"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parseStream feeds stream to a copyParser in the given pieces and returns
// the rows it made, or the first error.
func parseStream(t *testing.T, pieces [][]byte) ([]rec, error) {
	t.Helper()
	out := make(chan pgResult, 64)
	b := newBatchBuilder(checkedAlloc(t), UUIDSchema, 2)
	defer b.release()
	p := &copyParser{ctx: context.Background(), b: b, out: out, r: &pgReader{}, uuid: true}
	var err error
	for _, piece := range pieces {
		if _, err = p.Write(piece); err != nil {
			break
		}
	}
	if err == nil {
		err = p.end()
	}
	if rec := b.flush(); rec != nil {
		out <- pgResult{rec: rec}
	}
	close(out)
	var got []rec
	for res := range out {
		got = append(got, recsOf(res.rec)...)
		res.rec.Release()
	}
	return got, err
}

// The rows of a real server's binary COPY stream, whatever its split into
// writes: one piece, every byte alone, and random cuts.
func TestCopyBinaryAnySplit(t *testing.T) {
	stream := copyStream(t)
	want := []rec{
		{1, "6f0e5d4c-3b2a-4190-8877-665544332211", "Alice@Example.COM", true, true, "2024-01-02T03:04:05.123456Z", "<null>"},
		{2, "<null>", "tab\there\\back\nnl@example.org", true, false, "<null>", "<null>"},
		{3, "00000000-0000-0000-0000-000000000003", "bob@bücher.de", false, false, "2020-02-29T07:00:00Z", "<null>"},
		{4, "00000000-0000-0000-0000-000000000004", "", true, true, "<null>", "<null>"},
	}
	got, err := parseStream(t, [][]byte{stream})
	sortRecs(got)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("one piece: %v\n got %+v\nwant %+v", err, got, want)
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	splits := [][][]byte{bytewise}
	for range 200 {
		var pieces [][]byte
		for rest := stream; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(40))
			pieces, rest = append(pieces, rest[:n]), rest[n:]
		}
		splits = append(splits, pieces)
	}
	for i, pieces := range splits {
		got, err := parseStream(t, pieces)
		sortRecs(got)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("split %d (%d pieces): %v\n got %+v", i, len(pieces), err, got)
		}
	}
}

// A stream that is cut, malformed or not binary fails with an error saying
// what is wrong, never a partial success.
func TestCopyBinaryBadStreams(t *testing.T) {
	stream := copyStream(t)
	header := 19 // signature, flags, extension length 0
	if !bytes.HasPrefix(stream, []byte(binarySignature)) || binary.BigEndian.Uint32(stream[15:]) != 0 {
		t.Fatalf("unexpected header % x", stream[:header])
	}
	// withField overwrites the stream's bytes at at: the first tuple's
	// field count is at header, its id's length at header+2.
	withField := func(at int, v []byte) []byte {
		s := bytes.Clone(stream)
		copy(s[at:], v)
		return s
	}
	for _, c := range []struct {
		name, want string
		stream     []byte
	}{
		{"cut inside a row", "ended inside a row", stream[:len(stream)-9]},
		{"cut before the trailer", "without its trailer", stream[:len(stream)-2]},
		{"only part of the header", "before its header", stream[:10]},
		{"text format", "not in binary format", []byte("1\t6f0e5d4c-3b2a-4190-8877-665544332211\tAlice@Example.COM\tt\tt\t\\N\t\\N\n")},
		{"data after the trailer", "after its trailer", append(bytes.Clone(stream), 0, 7)},
		{"six fields", "has 6 fields, want 7", withField(header, []byte{0, 6})},
		{"null id", "id has -1 bytes", slices.Concat(stream[:header+2], []byte{0xff, 0xff, 0xff, 0xff}, stream[header+2+4+8:])},
		{"negative length", "field 1 has length -2", withField(header+2, []byte{0xff, 0xff, 0xff, 0xfe})},
		{"oids", "has OIDs", withField(11, []byte{0, 1, 0, 0})},
	} {
		_, err := parseStream(t, [][]byte{c.stream})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// Parsing never panics, whatever the bytes.
func FuzzCopyBinary(f *testing.F) {
	f.Add([]byte(binarySignature + "\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"))
	f.Add([]byte("PGCOPY"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A row takes at least 38 bytes: a fuzzer's input fills far
		// fewer batches than the channel holds.
		out := make(chan pgResult, 1<<12)
		b := newBatchBuilder(memory.DefaultAllocator, UUIDSchema, 16)
		defer b.release()
		defer func() {
			close(out)
			for res := range out {
				res.rec.Release()
			}
		}()
		p := &copyParser{ctx: context.Background(), b: b, out: out, r: &pgReader{}, uuid: true}
		half := len(data) / 2
		if _, err := p.Write(data[:half]); err == nil {
			p.Write(data[half:])
		}
		p.end()
	})
}
