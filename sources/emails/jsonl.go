package emails

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// JSONL files: one JSON object per line, fields named by the jsonl mapping.
// id is a number or a string of digits; user_id a string or a number;
// email a string (required); verified and primary booleans (or the CSV
// spellings as strings), absent meaning false; created and verified_at
// RFC 3339 strings or Unix seconds, absent or null meaning unknown. An
// object naming a key twice is malformed (which one would win is the
// decoder's whim, not the exporter's intent).
//
// Strings are decoded here rather than by encoding/json, which replaces
// bytes that are not UTF-8 with U+FFFD and so turns "b\xff@ex1.com" into a
// well-formed address: user_id and email keep the line's bytes as they
// are (a lone \uD800-style surrogate escape becomes the bytes UTF-8 would
// give it, which are not valid UTF-8 either), like the CSV and Postgres
// sources, and the snapshot marks and escapes them.

type jsonlParser struct {
	names [nFields]string
	vals  [nFields][]byte     // raw value of each field on this line, nil if absent
	keys  [][]byte            // the line's top-level keys, decoded, for duplicates
	many  map[string]struct{} // the keys of a line with very many
	kbuf  []byte              // decoded keys that had escapes
	buf   [2][]byte           // decoded user_id and email
	sbuf  []byte              // other decoded strings
}

func openJSONL(path string, opts Options) (Reader, error) {
	lines, err := openLines("jsonl", path)
	if err != nil {
		return nil, err
	}
	p := &jsonlParser{names: fieldNames(opts.JSONL)}
	return &fileReader{
		kind: "jsonl", path: path, lines: lines, all: opts.All,
		b:     newBatchBuilder(opts.alloc(), Schema, opts.batchSize()),
		parse: p.parse,
	}, nil
}

const badJSON = "bad JSON: not one JSON object on the line"

func (p *jsonlParser) parse(line []byte, r *row) string {
	// validJSON checks the syntax without building anything (it accepts
	// bytes that are not UTF-8 inside strings, which the walk below keeps).
	if !validJSON(line) {
		return badJSON
	}
	if reason := p.members(line); reason != "" {
		return reason
	}
	get := func(i int) ([]byte, bool) {
		v := p.vals[i]
		if v == nil || string(v) == "null" {
			return nil, false
		}
		return v, true
	}
	var ok bool
	v, present := get(fID)
	if !present {
		return "no " + p.names[fID] + " field"
	}
	if r.id, ok = parseID(unquote(v)); !ok {
		return "id is not an integer"
	}
	if v, present = get(fUserID); present {
		if v[0] == '"' {
			p.buf[0] = decodeString(p.buf[0][:0], v)
			r.userID, r.userNull = p.buf[0], false
		} else if _, err := strconv.ParseFloat(string(v), 64); err == nil {
			r.userID, r.userNull = v, false
		} else {
			return "user_id is not a string or a number"
		}
	} else {
		r.userNull = true
	}
	v, present = get(fEmail)
	if !present {
		return "no " + p.names[fEmail] + " field"
	}
	if v[0] != '"' {
		return "email is not a string"
	}
	p.buf[1] = decodeString(p.buf[1][:0], v)
	r.email = p.buf[1]
	for _, f := range []struct {
		i   int
		dst *bool
	}{{fVerified, &r.verified}, {fPrimary, &r.primary}} {
		*f.dst = false
		if v, present := get(f.i); present {
			if *f.dst, ok = parseBool(unquote(v)); !ok {
				return fieldKeys[f.i] + " is not a boolean"
			}
		}
	}
	var reason string
	if r.created, r.hasCreated, reason = p.jsonTime(get(fCreated)); reason != "" {
		return "created " + reason
	}
	if r.verAt, r.hasVAt, reason = p.jsonTime(get(fVerifiedAt)); reason != "" {
		return "verified_at " + reason
	}
	return ""
}

// members walks the top-level members of line, which validJSON accepted,
// keeping the raw value of each mapped field; it returns the reason when
// line is not an object or names a key twice.
func (p *jsonlParser) members(line []byte) string {
	clear(p.vals[:])
	p.keys = p.keys[:0]
	// Decoded keys are never longer than their JSON form: kbuf never grows
	// while keys point into it.
	if cap(p.kbuf) < len(line) {
		p.kbuf = make([]byte, 0, len(line))
	}
	p.kbuf = p.kbuf[:0]
	i := skipSpace(line, 0)
	if line[i] != '{' {
		return badJSON
	}
	i = skipSpace(line, i+1)
	for line[i] != '}' {
		end := stringEnd(line, i)
		key := line[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			start := len(p.kbuf)
			p.kbuf = decodeString(p.kbuf, line[i:end])
			key = p.kbuf[start:]
		}
		if p.seen(key) {
			return p.duplicate(key)
		}
		i = skipSpace(line, end)
		i = skipSpace(line, i+1) // the colon
		vend := valueEnd(line, i)
		for f, n := range p.names {
			if string(key) == n {
				p.vals[f] = line[i:vend]
			}
		}
		i = skipSpace(line, vend)
		if line[i] == ',' {
			i = skipSpace(line, i+1)
		}
	}
	return ""
}

// seen reports whether key was already on the line, and records it. A
// line has a handful of keys, compared one by one; a line with very many
// goes through a map so that it costs no more than its length.
func (p *jsonlParser) seen(key []byte) bool {
	if len(p.keys) < 32 {
		for _, k := range p.keys {
			if bytes.Equal(k, key) {
				return true
			}
		}
		p.keys = append(p.keys, key)
		return false
	}
	if len(p.keys) == 32 {
		if p.many == nil {
			p.many = map[string]struct{}{}
		}
		clear(p.many)
		for _, k := range p.keys {
			p.many[string(k)] = struct{}{}
		}
		p.keys = append(p.keys, nil) // past 32: the map has them
	}
	if _, ok := p.many[string(key)]; ok {
		return true
	}
	p.many[string(key)] = struct{}{}
	return false
}

// duplicate is the reason for a key named twice. The key is named only when
// it is one of the mapped fields: any other key is the exporter's text and
// could be anything, an address included.
func (p *jsonlParser) duplicate(key []byte) string {
	for _, n := range p.names {
		if string(key) == n {
			return "duplicate key " + strconv.Quote(n) + ": the object names it twice"
		}
	}
	return "duplicate key: the object names a key twice"
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string that
// starts at b[i] (valid JSON).
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the value that starts at b[i] (valid
// JSON).
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' {
		i++
	}
	return i
}

// decodeString appends the JSON string v (quotes included, valid JSON) to
// dst, decoded. Unlike encoding/json it keeps bytes that are not UTF-8 as
// they are, and writes a lone surrogate escape as the three bytes UTF-8
// would give it (not valid UTF-8 either), so that invalid text stays
// detectable instead of turning into U+FFFD.
func decodeString(dst, v []byte) []byte {
	s := v[1 : len(v)-1]
	for {
		j := bytes.IndexByte(s, '\\')
		if j < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:j]...)
		if j+1 >= len(s) {
			return dst
		}
		c := s[j+1]
		s = s[j+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r1, ok := hex4(s)
			if !ok {
				return dst
			}
			s = s[4:]
			if utf16.IsSurrogate(r1) {
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if r2, ok := hex4(s[2:]); ok {
						if r := utf16.DecodeRune(r1, r2); r != utf8.RuneError {
							dst = utf8.AppendRune(dst, r)
							s = s[6:]
							continue
						}
					}
				}
				// A lone surrogate: its generalized UTF-8 form.
				dst = append(dst, 0xe0|byte(r1>>12), 0x80|byte(r1>>6)&0x3f, 0x80|byte(r1)&0x3f)
				continue
			}
			dst = utf8.AppendRune(dst, r1)
		default: // " \ /
			dst = append(dst, c)
		}
	}
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(hexVal(c))
	}
	return r, true
}

// unquote strips the quotes of a simple JSON string (ids and booleans
// written as strings); other values are returned as they are.
func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 {
		return v[1 : len(v)-1]
	}
	return v
}

func (p *jsonlParser) jsonTime(v []byte, present bool) (int64, bool, string) {
	if !present {
		return 0, false, ""
	}
	if v[0] == '"' {
		p.sbuf = decodeString(p.sbuf[:0], v)
		s := string(p.sbuf)
		if strings.TrimSpace(s) == "" {
			return 0, false, ""
		}
		us, ok := parseTime(s)
		if !ok {
			return 0, false, "is not a time (RFC 3339)"
		}
		return us, true, ""
	}
	sec, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false, "is not a time (RFC 3339 string or Unix seconds)"
	}
	return int64(sec * 1e6), true, ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= 'a':
		return int(c-'a') + 10
	case c >= 'A':
		return int(c-'A') + 10
	}
	return int(c - '0')
}
