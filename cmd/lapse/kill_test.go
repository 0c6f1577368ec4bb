package main

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
)

// TestRunKilledNineResumes kills `lapse run` with SIGKILL in the middle of
// resolve — no signal handler, no deferred cleanup: the cache, the
// lifecycle database, the journal and the lock are left as a crash leaves
// them — then runs the night again. It must resume after plan and publish
// the same changeset as a night that was never interrupted.
//
// The killed run asks RDAP through a gate that holds every lookup after the
// first 60 until the kill: the run cannot finish first, however slow the
// machine, so the test waits for its condition (40 journaled lookups) with
// a generous deadline instead of racing the run.
func TestRunKilledNineResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: runs lapse as a subprocess over the simulator")
	}
	straight := filepath.Join(t.TempDir(), "straight")
	s := newSimSetupWith(t, straight, "", sim.ServerOptions{})
	date := "2026-01-01"
	env := s.export(date)
	day := time.Now().UTC().Format(time.DateOnly)

	if code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", date); code != exitOK {
		t.Fatalf("uninterrupted night: exit %d\n%s\n%s", code, out, errs)
	}

	killed := filepath.Join(t.TempDir(), "killed")
	cfg := s.configFor(killed, "")
	gate := newRDAPGate(t, s.srv, 60)
	env = append(env, "LAPSE_PROVIDERS_RDAP_BOOTSTRAP_URL="+gate.bootstrapURL())
	cmd := exec.Command(os.Args[0], "--config", cfg, "--log-format", "json", "run", "--date", date)
	// A held lookup waits for the kill, not for its attempt's timeout.
	cmd.Env = append(append(os.Environ(), env...), "LAPSE_TEST_AS_CLI=1", "LAPSE_PROVIDERS_RDAP_TIMEOUT=10m")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(killed, "observations", "date="+date, "lookups.jsonl")
	deadline := time.Now().Add(2 * time.Minute)
	for lines(journal) < 40 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("resolve never reached 40 lookups (%d RDAP requests at the gate)\n%s", gate.requests.Load(), logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed mid-night (%v): it finished first\n%s", err, logs.String())
	}
	gate.open()
	done := lines(journal)

	code, out, errs := runLapse(t, "", env, "--config", cfg, "--log-format", "json", "run", "--date", date)
	if code != exitOK {
		t.Fatalf("night after the kill: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, `"msg":"resuming an interrupted night","date":"`+date+`","after":"plan"`) {
		t.Errorf("the night did not resume after plan:\n%s", errs)
	}
	if !strings.Contains(errs, `"msg":"resolve resumes"`) {
		t.Errorf("resolve did not pick up the %d journaled lookups:\n%s", done, errs)
	}
	if time.Now().UTC().Format(time.DateOnly) != day {
		t.Skip("SKIPPED: the runs straddled midnight UTC, so their evidence dates differ; run again")
	}
	sp := night.Paths{DataDir: straight, Date: date}
	kp := night.Paths{DataDir: killed, Date: date}
	for _, fn := range []string{"changeset.csv", "notify.csv", "summary.md"} {
		a, err := os.ReadFile(filepath.Join(sp.Changeset(), fn))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(kp.Changeset(), fn))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted night's", fn)
		}
	}
	if bytes.Count(mustRead(t, filepath.Join(sp.Changeset(), "changeset.csv")), []byte("\n")) < 2 {
		t.Error("the night flagged nothing: the comparison proves little")
	}
	m, err := pipeline.ReadManifest(night.Paths{DataDir: killed, Date: date})
	t.Logf("killed after %d of %d planned lookups", done, m.Figures.Planned)
	if err != nil || m.Outcome != night.OutcomeOK || m.Attempts != 2 {
		t.Errorf("manifest after the kill: outcome %q attempts %d (%v)", m.Outcome, m.Attempts, err)
	}
	// The cache survived the crash and holds every domain of the night.
	ms, err := pipeline.ReadManifest(night.Paths{DataDir: straight, Date: date})
	if err != nil || m.Figures.VerifiedDomains != ms.Figures.VerifiedDomains || m.Figures.Planned != ms.Figures.Planned {
		t.Errorf("figures after the kill %+v, uninterrupted %+v (%v)", m.Figures, ms.Figures, err)
	}
	code, out, _ = runLapse(t, "", env, "--config", cfg, "cache", "stats")
	if code != exitOK {
		t.Errorf("cache stats after the kill: exit %d\n%s", code, out)
	}
}

// lines counts the complete lines of a file (0 when it is missing).
func lines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rdapGate stands between a run and the simulator's RDAP: it serves the
// simulator's bootstrap naming the gate as the RDAP server, passes the
// first pass lookups on, and holds the later ones until open is called.
type rdapGate struct {
	srv      *httptest.Server
	requests atomic.Int64
	release  chan struct{}
	once     sync.Once
}

func newRDAPGate(t *testing.T, s *sim.Servers, pass int64) *rdapGate {
	t.Helper()
	ep := s.Endpoints()
	target, err := url.Parse(ep.RDAP)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.ErrorLog = log.New(io.Discard, "", 0) // lookups the kill cut off
	g := &rdapGate{release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dns.json" {
			resp, err := http.Get(ep.RDAPBootstrap)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Write(bytes.ReplaceAll(b, []byte(ep.RDAP), []byte(g.srv.URL+target.Path)))
			return
		}
		if g.requests.Add(1) > pass {
			select {
			case <-g.release:
			case <-r.Context().Done(): // the run was killed
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.open(); g.srv.Close() })
	return g
}

func (g *rdapGate) bootstrapURL() string { return g.srv.URL + "/dns.json" }

// open lets every lookup through from now on.
func (g *rdapGate) open() { g.once.Do(func() { close(g.release) }) }
