// Package providertest is the one test suite every status provider passes
// (after restic's backend suite): found, not found, throttled (429 with
// Retry-After, 403 with a rate-limit text), 5xx (retried), 401 (stops the
// provider), timeouts, resets mid-body, garbage, an oversized answer and a
// slow server, each against a real loopback HTTP server; and its port-43
// twin (RunPort43) for WHOIS over a real loopback TCP server. Whatever goes
// wrong, no answer may end as available.
//
// A provider's own test calls Run with a Fixture describing how its server
// speaks (RunPort43 with a Port43Fixture).
package providertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// Fixture tells the suite how to build the provider under test and what its
// server answers.
type Fixture struct {
	// New builds the provider talking to base (the loopback server's URL)
	// through client (whose Timeout the suite sets).
	New func(t *testing.T, base string, client *http.Client) status.Provider
	// Query returns the domain a request asks about ("" if it asks none).
	Query func(r *http.Request) string
	// Found writes a 200 answer saying domain is registered; NotFound an
	// answer (any status) saying it is not registered.
	Found, NotFound func(w http.ResponseWriter, domain string)
	// Check inspects each request (credentials, headers); nil skips.
	Check func(t *testing.T, r *http.Request)
	// Keyless providers (RDAP) send no credentials: a 401 is one server's
	// refusal, an error that must not stop the provider for every TLD.
	// Keyed providers (Domainr, Fastly) must return status.ErrUnauthorized.
	Keyless bool
}

// server is a loopback server whose handler a case sets.
type server struct {
	*httptest.Server
	hits atomic.Int64
	done chan struct{}
}

func start(t *testing.T, f Fixture, h func(w http.ResponseWriter, r *http.Request, n int64)) *server {
	t.Helper()
	s := &server{done: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.hits.Add(1)
		if f.Check != nil {
			f.Check(t, r)
		}
		h(w, r, n)
	}))
	t.Cleanup(s.Close)
	// Registered after Close, so it runs first: hanging handlers return.
	t.Cleanup(func() { close(s.done) })
	return s
}

func (f Fixture) provider(t *testing.T, s *server, timeout time.Duration) status.Provider {
	return f.New(t, s.URL, &http.Client{Timeout: timeout})
}

const domain = "example-lapse.com"

// instant is a retry sleep that records the waits and does not wait.
type instant struct {
	mu sync.Mutex
	d  []time.Duration
}

func (i *instant) Sleep(ctx context.Context, d time.Duration) error {
	i.mu.Lock()
	i.d = append(i.d, d)
	i.mu.Unlock()
	return ctx.Err()
}

// notAvailable fails the test when a failed lookup produced a state, and
// checks that the chain records it as unknown with the error.
func notAvailable(t *testing.T, lc lifecycle.Lifecycle, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("lookup succeeded with %s, want an error", lc.State)
	}
	if lc.State != "" {
		t.Errorf("failed lookup returned state %q with the error", lc.State)
	}
}

// Run runs the suite.
func Run(t *testing.T, f Fixture) {
	ctx := context.Background()
	found := func(w http.ResponseWriter, r *http.Request, _ int64) { f.Found(w, f.Query(r)) }

	t.Run("Found", func(t *testing.T) {
		s := start(t, f, found)
		lc, err := f.provider(t, s, 5*time.Second).Lookup(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		if !lc.State.RegisteredFamily() || lc.Domain != domain || lc.CheckedAt.IsZero() {
			t.Errorf("got %+v, want a registered-family state for %s with checked_at", lc, domain)
		}
		if len(lc.Evidence) != 1 || lc.Evidence[0].Server != "127.0.0.1" || lc.Evidence[0].State != lc.State {
			t.Errorf("evidence %+v, want the answer naming the API's host", lc.Evidence)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) { f.NotFound(w, f.Query(r)) })
		lc, err := f.provider(t, s, 5*time.Second).Lookup(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		if lc.State != lifecycle.Available {
			t.Errorf("state %s, want available", lc.State)
		}
	})
	t.Run("Throttled429RetryAfter", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, n int64) {
			if n == 1 {
				w.Header().Set("Retry-After", "7")
				http.Error(w, `{"message":"Too Many Requests"}`, http.StatusTooManyRequests)
				return
			}
			found(w, r, n)
		})
		p := f.provider(t, s, 5*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		var te *status.ThrottledError
		if !errors.As(err, &te) || te.RetryAfter != 7*time.Second {
			t.Fatalf("err %v, want throttled with Retry-After 7s", err)
		}
		// Through the retry wrapper the wait is honoured, then it answers.
		var sl instant
		lc, err = status.Retry(p, status.RetryOptions{Retries: 2, Sleep: sl.Sleep}).Lookup(ctx, domain)
		if err != nil || !lc.State.RegisteredFamily() {
			t.Fatalf("after retry: %v, %v", lc.State, err)
		}
		if len(sl.d) != 0 {
			t.Errorf("unexpected waits %v (second server hit already answers)", sl.d)
		}
		s2 := start(t, f, func(w http.ResponseWriter, r *http.Request, n int64) {
			if n <= 2 {
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			found(w, r, n)
		})
		var sl2 instant
		lc, err = status.Retry(f.provider(t, s2, 5*time.Second), status.RetryOptions{Retries: 3, Base: time.Millisecond, Sleep: sl2.Sleep}).Lookup(ctx, domain)
		if err != nil || !lc.State.RegisteredFamily() {
			t.Fatalf("retry through 429s: %v, %v", lc.State, err)
		}
		if len(sl2.d) != 2 || sl2.d[0] < 3*time.Second || sl2.d[1] < 3*time.Second {
			t.Errorf("waits %v, want two of at least 3s (Retry-After)", sl2.d)
		}
	})
	t.Run("Throttled403Text", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Error(w, "Rate limit exceeded. Too many requests, try again later.", http.StatusForbidden)
		})
		p := f.provider(t, s, 5*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		var te *status.ThrottledError
		if !errors.As(err, &te) {
			t.Errorf("err %v, want throttled", err)
		}
	})
	t.Run("ServerErrorRetried", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, n int64) {
			if n <= 2 {
				http.Error(w, "upstream down", http.StatusServiceUnavailable)
				return
			}
			found(w, r, n)
		})
		p := f.provider(t, s, 5*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		if !status.Retryable(err) {
			t.Errorf("5xx not retryable: %v", err)
		}
		var sl instant
		lc, err = status.Retry(p, status.RetryOptions{Retries: 3, Sleep: sl.Sleep}).Lookup(ctx, domain)
		if err != nil || !lc.State.RegisteredFamily() || s.hits.Load() != 3 {
			t.Fatalf("after retries: %v, %v, %d hits", lc.State, err, s.hits.Load())
		}
	})
	t.Run("Unauthorized", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Error(w, `{"message":"invalid credentials"}`, http.StatusUnauthorized)
		})
		hint := "check the key"
		if f.Keyless {
			hint = ""
		}
		p := status.Polite(f.provider(t, s, 5*time.Second), status.Politeness{
			Retry:            status.RetryOptions{Retries: 3, Sleep: (&instant{}).Sleep},
			UnauthorizedHint: hint,
		})
		for i := 0; i < 3; i++ {
			lc, err := p.Lookup(ctx, domain)
			notAvailable(t, lc, err)
			if f.Keyless {
				continue
			}
			if !errors.Is(err, status.ErrUnauthorized) {
				t.Fatalf("lookup %d: %v, want unauthorized", i, err)
			}
			if i > 0 && !errors.Is(err, status.ErrStopped) {
				t.Errorf("lookup %d: %v lacks the stop message", i, err)
			}
		}
		if !f.Keyless && s.hits.Load() != 1 {
			t.Errorf("%d requests after a 401, want 1 (provider stopped)", s.hits.Load())
		}
		if f.Keyless && s.hits.Load() < 3 {
			t.Errorf("%d requests for 3 lookups: a keyless provider must not stop on one server's 401", s.hits.Load())
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		s := start(t, f, nil)
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
		})
		p := f.provider(t, s, 150*time.Millisecond)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		if !status.Retryable(err) {
			t.Errorf("timeout not retryable: %v", err)
		}
		// The caller's deadline ends a hanging lookup too.
		p = f.provider(t, s, time.Minute)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		lc, err = p.Lookup(cctx, domain)
		notAvailable(t, lc, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller deadline: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("ResetMidBody", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"status\":[{\"domain\":\"")
			buf.Flush()
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		})
		p := f.provider(t, s, 5*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		if !status.Retryable(err) {
			t.Errorf("reset not retryable: %v", err)
		}
	})
	for name, body := range map[string]string{
		"GarbageHTML":  "<html><body>502 Bad Gateway</body></html>",
		"GarbageJSON":  `{"status": [{"domain": 42,`,
		"EmptyBody":    "",
		"WrongShape":   `[1,2,3]`,
		"NullFields":   `{"status":null,"domain":null}`,
		"EmptyObjects": `{}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
			})
			p := f.provider(t, s, 5*time.Second)
			lc, err := p.Lookup(ctx, domain)
			notAvailable(t, lc, err)
		})
	}
	t.Run("HugeAnswerCapped", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, _ int64) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":[{"domain":"`+domain+`","summary":"`)
			chunk := strings.Repeat("a", 64<<10)
			for i := 0; i < 160; i++ { // 10 MiB
				if _, err := io.WriteString(w, chunk); err != nil {
					return // the client hung up once it had enough
				}
			}
			io.WriteString(w, `","status":"inactive"}]}`)
		})
		p := f.provider(t, s, 10*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
	})
	t.Run("SlowServer", func(t *testing.T) {
		s := start(t, f, func(w http.ResponseWriter, r *http.Request, n int64) {
			// Latency before the answer: the server is slow, not broken.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
			}
			found(w, r, n)
		})
		lc, err := f.provider(t, s, 5*time.Second).Lookup(ctx, domain)
		if err != nil || !lc.State.RegisteredFamily() {
			t.Fatalf("slow server: %v, %v", lc.State, err)
		}
	})
	t.Run("ChainNeverAvailable", func(t *testing.T) {
		// Every failure above, through the chain, is unknown with the error.
		faults := []func(w http.ResponseWriter, r *http.Request, n int64){
			func(w http.ResponseWriter, r *http.Request, _ int64) {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			},
			func(w http.ResponseWriter, r *http.Request, _ int64) {
				http.Error(w, "quota exceeded", http.StatusForbidden)
			},
			func(w http.ResponseWriter, r *http.Request, _ int64) { w.WriteHeader(http.StatusBadGateway) },
			func(w http.ResponseWriter, r *http.Request, _ int64) { io.WriteString(w, "not json") },
		}
		for i, h := range faults {
			unknownThroughChain(t, f.provider(t, start(t, f, h), 5*time.Second), i)
		}
	})
}

// unknownThroughChain fails the test unless p's failing lookup, through the
// chain, is state unknown with the error recorded in Error and Evidence.
func unknownThroughChain(t *testing.T, p status.Provider, fault int) {
	t.Helper()
	c, err := status.NewChain([]status.Provider{p}, status.ChainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := c.Lookup(context.Background(), domain)
	if err != nil {
		t.Fatalf("fault %d: chain returned error %v", fault, err)
	}
	if lc.State != lifecycle.Unknown || lc.Error == "" || len(lc.Evidence) != 1 || lc.Evidence[0].Error == "" {
		t.Errorf("fault %d: %+v, want unknown with the error recorded", fault, lc)
	}
}
