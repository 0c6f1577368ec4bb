package emails

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/lapse-dev/lapse/config"
)

// CSV files: the first line is the header; fields are separated by commas
// and may be quoted with "…" ("" is a quote inside). A record is one line:
// a quoted field may not span lines, so broken quoting costs exactly the
// line it is on, never the rest of the file.

type csvParser struct {
	idx    [nFields]int // column of each field, -1 when absent
	nCols  int
	fields [][]byte
	buf    []byte
}

func openCSV(path string, opts Options) (Reader, error) {
	lines, err := openLines("csv", path)
	if err != nil {
		return nil, err
	}
	p := &csvParser{}
	if err := p.header(path, lines, opts.CSV); err != nil {
		lines.f.Close()
		return nil, err
	}
	return &fileReader{
		kind: "csv", path: path, lines: lines, all: opts.All,
		b:     newBatchBuilder(opts.alloc(), Schema, opts.batchSize()),
		parse: p.parse,
	}, nil
}

func (p *csvParser) header(path string, lines *lineReader, fc config.FileConfig) error {
	line, err := lines.next()
	if err != nil {
		return &ConfigError{Msg: fmt.Sprintf("csv source %s: no header line: the first line must name the columns (%v)", path, err)}
	}
	var reason string
	if p.fields, p.buf, reason = splitCSV(line, p.fields[:0], p.buf[:0]); reason != "" {
		return &ConfigError{Msg: fmt.Sprintf("csv source %s: line 1 (header): %s", path, reason)}
	}
	p.nCols = len(p.fields)
	col := map[string]int{}
	for i, f := range p.fields {
		col[strings.TrimSpace(string(f))] = i
	}
	names := fieldNames(fc)
	for i, n := range names {
		c, ok := col[n]
		if !ok {
			c = -1
			if i == fID || i == fEmail || i == fVerified {
				return &ConfigError{Msg: fmt.Sprintf("csv source %s: header has no %q column: set csv.%s (LAPSE_CSV_%s) to the name of the %s column",
					path, n, fieldKeys[i], strings.ToUpper(fieldKeys[i]), fieldKeys[i])}
			}
		}
		p.idx[i] = c
	}
	return nil
}

func (p *csvParser) parse(line []byte, r *row) string {
	var reason string
	if p.fields, p.buf, reason = splitCSV(line, p.fields[:0], p.buf[:0]); reason != "" {
		return reason
	}
	if len(p.fields) != p.nCols {
		return fmt.Sprintf("wrong field count: %d fields, the header has %d", len(p.fields), p.nCols)
	}
	get := func(i int) ([]byte, bool) {
		if p.idx[i] < 0 {
			return nil, false
		}
		return p.fields[p.idx[i]], true
	}
	var ok bool
	v, _ := get(fID)
	if r.id, ok = parseID(v); !ok {
		return "id is not an integer"
	}
	r.userID, ok = get(fUserID)
	r.userNull = !ok || len(r.userID) == 0
	r.email, _ = get(fEmail)
	v, _ = get(fVerified)
	if r.verified, ok = parseBool(v); !ok {
		return "verified is not a boolean (t/f/true/false/1/0)"
	}
	v, _ = get(fPrimary)
	if r.primary, ok = parseBool(v); !ok {
		return "primary is not a boolean (t/f/true/false/1/0)"
	}
	if r.created, r.hasCreated, reason = optTime(get(fCreated)); reason != "" {
		return "created " + reason
	}
	if r.verAt, r.hasVAt, reason = optTime(get(fVerifiedAt)); reason != "" {
		return "verified_at " + reason
	}
	return ""
}

func optTime(v []byte, present bool) (int64, bool, string) {
	if !present || len(strings.TrimSpace(string(v))) == 0 {
		return 0, false, ""
	}
	us, ok := parseTime(string(v))
	if !ok {
		return 0, false, "is not a time (RFC 3339 or YYYY-MM-DD HH:MM:SS)"
	}
	return us, true, ""
}

// splitCSV splits one line into fields. Unquoted fields point into line;
// quoted ones are unescaped into buf. The fields stay valid until the next
// call with the same buf.
func splitCSV(line []byte, fields [][]byte, buf []byte) ([][]byte, []byte, string) {
	// Quoted fields are collected as offsets into buf first: buf may grow
	// (and move) while the line is split.
	type span struct {
		quoted     bool
		start, end int
	}
	var spans [16]span
	ss := spans[:0]
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			start := len(buf)
			i++
			for {
				j := indexByte(line, i, '"')
				if j < 0 {
					return fields, buf, "broken quoting: unterminated quoted field"
				}
				buf = append(buf, line[i:j]...)
				if j+1 < len(line) && line[j+1] == '"' {
					buf = append(buf, '"')
					i = j + 2
					continue
				}
				i = j + 1
				break
			}
			ss = append(ss, span{true, start, len(buf)})
			if i == len(line) {
				break
			}
			if line[i] != ',' {
				return fields, buf, "broken quoting: text after a closing quote"
			}
			i++
			continue
		}
		j := indexByte(line, i, ',')
		end := j
		if j < 0 {
			end = len(line)
		}
		if indexByte(line[:end], i, '"') >= 0 {
			return fields, buf, "broken quoting: a quote inside an unquoted field"
		}
		ss = append(ss, span{false, i, end})
		if j < 0 {
			break
		}
		i = j + 1
	}
	for _, s := range ss {
		if s.quoted {
			fields = append(fields, buf[s.start:s.end])
		} else {
			fields = append(fields, line[s.start:s.end])
		}
	}
	return fields, buf, ""
}

func indexByte(b []byte, from int, c byte) int {
	if j := bytes.IndexByte(b[from:], c); j >= 0 {
		return from + j
	}
	return -1
}
