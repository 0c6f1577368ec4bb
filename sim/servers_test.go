package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	whoisparser "github.com/likexian/whois-parser"

	"github.com/lapse-dev/lapse/lifecycle"
)

func startTest(t *testing.T, p Params, opts ServerOptions) (*World, *Servers) {
	t.Helper()
	w := NewWorld(p)
	opts.Dir = t.TempDir()
	s, err := Start(context.Background(), w, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return w, s
}

// rawWHOIS speaks port 43 by hand: one line out, read to EOF.
func rawWHOIS(t *testing.T, addr, q string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, q+"\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("whois %s: %v", q, err)
	}
	return string(b)
}

func httpGet(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// findDomain returns a domain under suffix in state st on day (and its day).
func findDomain(t *testing.T, w *World, suffix string, st lifecycle.State) (*Domain, int32) {
	t.Helper()
	for day := int32(0); day < 400; day += 7 {
		for i := range w.Domains {
			d := &w.Domains[i]
			if d.Suffix() == suffix && d.Kind != KindProvider && !isHost(d) && w.PhaseAt(d, day).State == st {
				return d, day
			}
		}
	}
	t.Fatalf("no .%s domain in state %s", suffix, st)
	return nil, 0
}

func TestWHOISParsesWithWhoisParser(t *testing.T) {
	w, s := startTest(t, Params{Seed: 7, Start: testStart, Emails: 20000}, ServerOptions{})
	cases := []struct {
		suffix string
		state  lifecycle.State
		status string // a status whois-parser must report ("" = none checked)
	}{
		{"com", lifecycle.Registered, ""},
		{"com", lifecycle.Grace, "autoRenewPeriod"},
		{"com", lifecycle.Redemption, "redemptionPeriod"},
		{"com", lifecycle.PendingDelete, "pendingDelete"},
		{"com", lifecycle.Available, ""},
		{"org", lifecycle.Registered, ""},
		{"org", lifecycle.Redemption, "redemptionPeriod"},
		{"co.uk", lifecycle.Registered, ""},
		{"co.uk", lifecycle.Grace, ""},
		{"co.uk", lifecycle.Available, ""},
		{"de", lifecycle.Registered, "connect"},
		{"de", lifecycle.Redemption, "redemptionPeriod"},
		{"de", lifecycle.Available, ""},
		{"jp", lifecycle.Registered, "Active"},
		{"jp", lifecycle.Grace, "Active"},
		{"jp", lifecycle.Available, ""},
	}
	for _, c := range cases {
		t.Run(c.suffix+"/"+string(c.state), func(t *testing.T) {
			d, day := findDomain(t, w, c.suffix, c.state)
			w.SetDate(w.dayTime(day))
			ph := w.PhaseAt(d, day)
			text := rawWHOIS(t, s.Endpoints().WHOIS, d.Name)
			info, err := whoisparser.Parse(text)
			if c.state == lifecycle.Available {
				if err != whoisparser.ErrNotFoundDomain {
					t.Fatalf("%s on day %d: want not found, got %v\n%s", d.Name, day, err, text)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: parse: %v\n%s", d.Name, err, text)
			}
			if info.Domain == nil {
				t.Fatalf("%s: no domain section\n%s", d.Name, text)
			}
			if !strings.EqualFold(info.Domain.Domain, d.Name) {
				t.Errorf("domain %q, want %q", info.Domain.Domain, d.Name)
			}
			if c.suffix != "de" {
				if got, want := info.Domain.CreatedDateInTime, w.dayTime(ph.Registered); got == nil || !got.Equal(want) {
					t.Errorf("%s created %v, want %v\n%s", d.Name, got, want, text)
				}
				if got, want := info.Domain.ExpirationDateInTime, w.dayTime(ph.Expires); got == nil || !got.Equal(want) {
					t.Errorf("%s expires %v, want %v\n%s", d.Name, got, want, text)
				}
			} else if info.Domain.ExpirationDate != "" {
				t.Errorf(".de publishes no expiry, parser read %q", info.Domain.ExpirationDate)
			}
			if c.status != "" && !contains(info.Domain.Status, c.status) {
				t.Errorf("%s statuses %q, want %q\n%s", d.Name, info.Domain.Status, c.status, text)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func TestRDAPPlainHTTP(t *testing.T) {
	w, s := startTest(t, Params{Seed: 7, Start: testStart, Emails: 20000}, ServerOptions{})
	ep := s.Endpoints()

	resp, body := httpGet(t, ep.RDAPBootstrap, nil)
	var boot struct {
		Version  string       `json:"version"`
		Services [][][]string `json:"services"`
	}
	if err := json.Unmarshal(body, &boot); err != nil || resp.StatusCode != 200 || boot.Version != "1.0" || len(boot.Services) == 0 {
		t.Fatalf("bootstrap: %d %v %s", resp.StatusCode, err, body)
	}
	tlds := boot.Services[0][0]
	if !contains(tlds, "com") || !contains(tlds, "uk") || contains(tlds, "de") || contains(tlds, "jp") {
		t.Errorf("bootstrap TLDs %v: want com and uk, not de or jp", tlds)
	}
	if boot.Services[0][1][0] != ep.RDAP {
		t.Errorf("bootstrap base %q, want %q", boot.Services[0][1][0], ep.RDAP)
	}

	for _, c := range []struct {
		state  lifecycle.State
		status string
	}{
		{lifecycle.Registered, ""},
		{lifecycle.Grace, "auto renew period"},
		{lifecycle.Redemption, "redemption period"},
		{lifecycle.PendingDelete, "pending delete"},
	} {
		d, day := findDomain(t, w, "com", c.state)
		w.SetDate(w.dayTime(day))
		ph := w.PhaseAt(d, day)
		resp, body := httpGet(t, ep.RDAP+"domain/"+d.Name, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/rdap+json" {
			t.Fatalf("%s: %d %s %s", d.Name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var obj struct {
			ObjectClassName string   `json:"objectClassName"`
			LDHName         string   `json:"ldhName"`
			Status          []string `json:"status"`
			Events          []struct {
				Action string    `json:"eventAction"`
				Date   time.Time `json:"eventDate"`
			} `json:"events"`
			Conformance []string `json:"rdapConformance"`
		}
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("%s: %v\n%s", d.Name, err, body)
		}
		if obj.ObjectClassName != "domain" || !strings.EqualFold(obj.LDHName, d.Name) || len(obj.Conformance) == 0 {
			t.Errorf("%s: bad object %s", d.Name, body)
		}
		if c.status != "" && !contains(obj.Status, c.status) {
			t.Errorf("%s in %s: statuses %v, want %q", d.Name, c.state, obj.Status, c.status)
		}
		ev := map[string]time.Time{}
		for _, e := range obj.Events {
			ev[e.Action] = e.Date
		}
		if !ev["registration"].Equal(w.dayTime(ph.Registered)) || !ev["expiration"].Equal(w.dayTime(ph.Expires)) {
			t.Errorf("%s events %v, want registration %v expiration %v", d.Name, ev, w.dayTime(ph.Registered), w.dayTime(ph.Expires))
		}
		if _, ok := ev["last update of RDAP database"]; !ok {
			t.Errorf("%s: no database update event", d.Name)
		}
	}

	d, day := findDomain(t, w, "com", lifecycle.Available)
	w.SetDate(w.dayTime(day))
	resp, body = httpGet(t, ep.RDAP+"domain/"+d.Name, nil)
	var e struct {
		ErrorCode int `json:"errorCode"`
	}
	if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.ErrorCode != 404 {
		t.Errorf("available %s: %d %s", d.Name, resp.StatusCode, body)
	}
	resp, _ = httpGet(t, ep.RDAP+"domain/never-registered-by-anyone.org", nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown name: %d, want 404", resp.StatusCode)
	}
	// IDN: the U-label is answered with the A-label and unicodeName
	for i := range w.Domains {
		d := &w.Domains[i]
		if d.Unicode != d.Name && policies[d.policy].rdap && w.PhaseAt(d, int32(w.Day())).Listed {
			_, body := httpGet(t, ep.RDAP+"domain/"+d.Name, nil)
			if !strings.Contains(string(body), `"unicodeName":"`+d.Unicode+`"`) {
				t.Errorf("IDN %s: no unicodeName %q in %s", d.Name, d.Unicode, body)
			}
			break
		}
	}
}

func TestDomainrFastlyAndControl(t *testing.T) {
	w, s := startTest(t, Params{Seed: 7, Start: testStart, Emails: 20000}, ServerOptions{})
	ep := s.Endpoints()
	key := s.opts.DomainrClientID

	resp, body := httpGet(t, ep.Domainr+"/v2/status?domain=gmail.com&client_id=wrong", nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), `"message"`) {
		t.Errorf("wrong key: %d %s", resp.StatusCode, body)
	}
	resp, body = httpGet(t, ep.Domainr+"/v2/status?domain=bad..name&client_id="+key, nil)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"errors"`) {
		t.Errorf("bad syntax: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		state lifecycle.State
		flag  string
	}{{lifecycle.Registered, "active"}, {lifecycle.Grace, "active"}, {lifecycle.Redemption, "expiring"}, {lifecycle.PendingDelete, "deleting"}, {lifecycle.Available, "inactive"}} {
		d, day := findDomain(t, w, "com", c.state)
		w.SetDate(w.dayTime(day))
		resp, body := httpGet(t, ep.Domainr+"/v2/status?domain="+d.Name+"&client_id="+key, nil)
		var out struct {
			Status []domainrStatus `json:"status"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || len(out.Status) != 1 {
			t.Fatalf("%s: %d %s", d.Name, resp.StatusCode, body)
		}
		if st := out.Status[0]; st.Domain != d.Name || st.Zone != "com" || !contains(strings.Fields(st.Status), c.flag) {
			t.Errorf("%s in %s: %+v, want flag %q", d.Name, c.state, st, c.flag)
		}
		// Fastly answers the same flags
		resp, body = httpGet(t, ep.Fastly+"/domain-management/v1/tools/status?domain="+d.Name, map[string]string{"Fastly-Key": s.opts.FastlyKey})
		var f struct{ Domain, Zone, Status, Scope string }
		if resp.StatusCode != 200 || json.Unmarshal(body, &f) != nil || !contains(strings.Fields(f.Status), c.flag) || f.Scope == "" {
			t.Errorf("fastly %s: %d %s", d.Name, resp.StatusCode, body)
		}
	}
	resp, _ = httpGet(t, ep.Fastly+"/domain-management/v1/tools/status?domain=gmail.com", map[string]string{"Fastly-Key": "nope"})
	if resp.StatusCode != 401 {
		t.Errorf("fastly wrong key: %d", resp.StatusCode)
	}

	w.SetDate(testStart)
	r, err := http.Post(ep.Control+"/sim/advance?days=3", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	_, body = httpGet(t, ep.Control+"/sim/date", nil)
	if !strings.Contains(string(body), `"date":"2026-03-04"`) || !w.Date().Equal(testStart.AddDate(0, 0, 3)) {
		t.Errorf("after advance: %s, world %v", body, w.Date())
	}
}

func TestIANAReferral(t *testing.T) {
	_, s := startTest(t, Params{Seed: 7, Start: testStart, Emails: 2000}, ServerOptions{})
	for _, tld := range []string{"com", "uk", "de", "jp"} {
		out := rawWHOIS(t, s.Endpoints().WHOIS, tld)
		if !strings.Contains(out, "refer:        "+s.Endpoints().WHOIS) || !strings.Contains(out, "whois:        "+s.Endpoints().WHOIS) {
			t.Errorf("%s: no referral to the registry:\n%s", tld, out)
		}
	}
	if out := rawWHOIS(t, s.Endpoints().WHOIS, "xyz"); strings.Contains(out, "refer:") {
		t.Errorf("unknown TLD referred:\n%s", out)
	}
	// the thin registry refers to the registrar, which answers the thick record
	out := rawWHOIS(t, s.Endpoints().WHOIS, "gmail.com")
	if !strings.Contains(out, "Registrar WHOIS Server: "+s.Endpoints().WHOISRegistrar) {
		t.Fatalf("no registrar referral:\n%s", out)
	}
	reg := strings.Replace(s.Endpoints().WHOISRegistrar, "localhost", "127.0.0.1", 1)
	out = rawWHOIS(t, reg, "gmail.com")
	if !strings.Contains(out, "Registrar Registration Expiration Date:") {
		t.Errorf("registrar answer:\n%s", out)
	}
}
