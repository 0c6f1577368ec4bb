package emails

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// JSONL files: one JSON object per line, fields named by the jsonl mapping.
// id is a number or a string of digits; user_id a string or a number;
// email a string (required); verified and primary booleans (or the CSV
// spellings as strings), absent meaning false; created and verified_at
// RFC 3339 strings or Unix seconds, absent or null meaning unknown.

type jsonlParser struct {
	names [nFields]string
	obj   map[string]json.RawMessage
	buf   []byte
}

func openJSONL(path string, opts Options) (Reader, error) {
	lines, err := openLines("jsonl", path)
	if err != nil {
		return nil, err
	}
	p := &jsonlParser{names: fieldNames(opts.JSONL), obj: map[string]json.RawMessage{}}
	return &fileReader{
		kind: "jsonl", path: path, lines: lines, all: opts.All,
		b:     newBatchBuilder(opts.alloc(), opts.batchSize()),
		parse: p.parse,
	}, nil
}

func (p *jsonlParser) parse(line []byte, r *row) string {
	clear(p.obj)
	if err := json.Unmarshal(line, &p.obj); err != nil {
		return "bad JSON: not one JSON object on the line"
	}
	get := func(i int) (json.RawMessage, bool) {
		v, ok := p.obj[p.names[i]]
		if !ok || string(v) == "null" {
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
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "user_id is not a string"
			}
			r.userID, r.userNull = []byte(s), false
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
	var email string
	if json.Unmarshal(v, &email) != nil {
		return "email is not a string"
	}
	p.buf = append(p.buf[:0], email...)
	r.email = p.buf
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
	if r.created, r.hasCreated, reason = jsonTime(get(fCreated)); reason != "" {
		return "created " + reason
	}
	if r.verAt, r.hasVAt, reason = jsonTime(get(fVerifiedAt)); reason != "" {
		return "verified_at " + reason
	}
	return ""
}

// unquote strips the quotes of a simple JSON string (ids and booleans
// written as strings); other values are returned as they are.
func unquote(v json.RawMessage) []byte {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 {
		return v[1 : len(v)-1]
	}
	return v
}

func jsonTime(v json.RawMessage, present bool) (int64, bool, string) {
	if !present {
		return 0, false, ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return 0, false, "is not a string"
		}
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
