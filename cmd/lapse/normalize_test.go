package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNormalizeArgs(t *testing.T) {
	code, out, errs := runLapse(t, "", nil, "normalize", "User@Bücher.DE", "x@foo.github.io", "nope", "u@[1.2.3.4]")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := `{"email":"User@Bücher.DE","host":"xn--bcher-kva.de","domain":"xn--bcher-kva.de","invalid_reason":null}
{"email":"x@foo.github.io","host":"foo.github.io","domain":"github.io","invalid_reason":null}
{"email":"nope","host":null,"domain":null,"invalid_reason":"no_at"}
{"email":"u@[1.2.3.4]","host":null,"domain":null,"invalid_reason":"address_literal"}
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestNormalizeStdin(t *testing.T) {
	// CRLF line endings, a line longer than bufio's default 64 KiB token,
	// and a public suffix host.
	long := "u@" + strings.Repeat("a", 70000) + ".com"
	in := "a@Example.COM\r\nb@co.uk\r\n" + long + "\nc@ｅｘａｍｐｌｅ。org"
	code, out, errs := runLapse(t, in, nil, "normalize")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got []normalizeLine
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var l normalizeLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		got = append(got, l)
	}
	if len(got) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(got), out)
	}
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	checks := []struct{ email, host, domain, reason string }{
		{"a@Example.COM", "example.com", "example.com", "<null>"},
		{"b@co.uk", "co.uk", "<null>", "public_suffix"},
		{long, strings.Repeat("a", 70000) + ".com", "<null>", "name_too_long"},
		{"c@ｅｘａｍｐｌｅ。org", "example.org", "example.org", "<null>"},
	}
	for i, c := range checks {
		g := got[i]
		if g.Email != c.email || str(g.Host) != c.host || str(g.Domain) != c.domain || str(g.InvalidReason) != c.reason {
			t.Errorf("line %d: got %q %q %q, want %q %q %q", i+1, str(g.Host), str(g.Domain), str(g.InvalidReason), c.host, c.domain, c.reason)
		}
	}
}

func TestNormalizeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	err := runNormalize(ctx, strings.NewReader(strings.Repeat("a@b.com\n", 10000)), &out, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}
