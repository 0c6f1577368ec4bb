package emails

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/lapse-dev/lapse/config"
)

// Field indexes of a file mapping, in Schema order.
const (
	fID = iota
	fUserID
	fEmail
	fVerified
	fPrimary
	fCreated
	fVerifiedAt
	nFields
)

// fieldKeys are the config keys (under csv. or jsonl.) naming each field.
var fieldKeys = [nFields]string{"id", "user_id", "email", "verified", "primary", "created", "verified_at"}

// fieldNames returns the source's name for each field: the configured one
// or the field's own name.
func fieldNames(fc config.FileConfig) [nFields]string {
	names := [nFields]string{fc.ID, fc.UserID, fc.Email, fc.Verified, fc.Primary, fc.Created, fc.VerifiedAt}
	for i := range names {
		if names[i] == "" {
			names[i] = fieldKeys[i]
		}
	}
	return names
}

// lineReader yields the lines of a file without their line ending, counting
// them from 1; a line longer than the buffer is assembled in long.
type lineReader struct {
	f    *os.File
	br   *bufio.Reader
	n    int64
	long []byte
}

func openLines(kind, path string) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", kind, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s source: %s is a folder, not a file", kind, path)
	}
	return &lineReader{f: f, br: bufio.NewReaderSize(f, 1<<20)}, nil
}

// next returns the next line (valid until the following call) or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.long = append(l.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = l.br.ReadSlice('\n')
			l.long = append(l.long, line...)
		}
		line = l.long
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	l.n++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if l.n == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	return line, nil
}

// fileReader is the part of the CSV and JSONL readers that does not depend
// on the format: batching, the verified filter, problems and Close.
type fileReader struct {
	kind     string
	path     string
	lines    *lineReader
	b        *batchBuilder
	all      bool
	problems Problems
	ids      idSet
	parse    func(line []byte, r *row) (reason string)
	closed   bool
	eof      bool
}

// Schema is Schema: a file's user ids are text.
func (fr *fileReader) Schema() *arrow.Schema { return Schema }

func (fr *fileReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if fr.closed {
		return nil, errClosed
	}
	var r row
	for !fr.eof && !fr.b.full() {
		if fr.lines.n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, err := fr.lines.next()
		if err == io.EOF {
			fr.eof = true
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s source %s: line %d: %w", fr.kind, fr.path, fr.lines.n+1, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines carry nothing
		}
		if reason := fr.parse(line, &r); reason != "" {
			fr.problems.add(fr.lines.n, reason)
			continue
		}
		if !r.verified && !fr.all {
			fr.problems.SkippedUnverified++
			continue
		}
		if fr.ids.add(r.id) {
			fr.problems.add(fr.lines.n, duplicateID(r.id, "line"))
			continue
		}
		fr.b.append(&r)
	}
	if rec := fr.b.flush(); rec != nil {
		return rec, nil
	}
	return nil, io.EOF
}

func (fr *fileReader) Problems() Problems { return fr.problems.copy() }

func (fr *fileReader) Close() error {
	if fr.closed {
		return nil
	}
	fr.closed = true
	fr.b.release()
	return fr.lines.f.Close()
}

// parseBool accepts t/f/true/false/1/0 in any case; empty is false.
func parseBool(b []byte) (bool, bool) {
	switch strings.ToLower(string(bytes.TrimSpace(b))) {
	case "t", "true", "1":
		return true, true
	case "f", "false", "0", "":
		return false, true
	}
	return false, false
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// parseTime accepts RFC 3339 and PostgreSQL's text output; a time without
// a zone is UTC. It returns microseconds since the epoch.
func parseTime(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}

// parseID parses an integer id, tolerating surrounding blanks.
func parseID(b []byte) (int64, bool) {
	b = bytes.TrimSpace(b)
	if n, ok := parseInt(b); ok {
		return n, true
	}
	// Exports sometimes write integers as 12.0 or 1e3; accept exact ones.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(f), true
}

// parseInt parses a decimal int64 without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		// A 20-digit number would wrap n*10 past 2^64 unchecked.
		if c < '0' || c > '9' || n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if !neg && n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}
