package providertest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// Port43Fixture tells RunPort43 how to build a port-43 provider (WHOIS)
// and what its server answers.
type Port43Fixture struct {
	// New builds the provider asking addr (the loopback server's
	// host:port) about the suite's domain, each query bounded by timeout.
	New func(t *testing.T, addr string, timeout time.Duration) status.Provider
	// Query returns the domain a query (the line without its white space)
	// asks about.
	Query func(line string) string
	// Found and NotFound return an answer saying domain is registered, and
	// one saying it is not.
	Found, NotFound func(domain string) string
	// Throttled is an answer refusing the query for its rate, such as
	// "WHOIS LIMIT EXCEEDED".
	Throttled string
	// MaxBytes is the provider's answer cap; the suite's huge answer is
	// ten times larger.
	MaxBytes int
}

// Port43Server is a loopback port-43 server for tests: it reads one query
// line per connection and lets its handler write the answer on the
// connection. The test's cleanup closes it: done is closed (hanging
// handlers return), then every connection, and it waits for the handlers.
type Port43Server struct {
	ln    net.Listener
	hits  atomic.Int64
	done  chan struct{}
	wg    sync.WaitGroup
	conns sync.Map // net.Conn → struct{}
}

// Port43Handler answers one query (the line without its white space);
// n counts the server's queries from 1.
type Port43Handler func(c net.Conn, query string, n int64, done <-chan struct{})

// StartPort43 starts a Port43Server on 127.0.0.1.
func StartPort43(t *testing.T, h Port43Handler) *Port43Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Port43Server{ln: ln, done: make(chan struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Store(c, struct{}{})
			s.wg.Go(func() {
				defer s.conns.Delete(c)
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				c.SetReadDeadline(time.Time{})
				h(c, strings.TrimSpace(line), s.hits.Add(1), s.done)
			})
		}
	})
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		s.wg.Wait()
	})
	return s
}

// Addr is the server's host:port.
func (s *Port43Server) Addr() string { return s.ln.Addr().String() }

// Hits is how many queries the server has read.
func (s *Port43Server) Hits() int64 { return s.hits.Load() }

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// RunPort43 runs the suite of Run over a loopback TCP server speaking
// port-43 WHOIS: found, not found, throttled (a rate-limit text, also one
// followed by a reset), timeouts, resets mid-answer, garbage, an oversized
// answer and a slow server. Whatever goes wrong, no answer may end as
// available.
func RunPort43(t *testing.T, f Port43Fixture) {
	if f.Throttled == "" || f.MaxBytes <= 0 {
		t.Fatalf("providertest: the Port43Fixture needs Throttled and MaxBytes (got %q, %d)", f.Throttled, f.MaxBytes)
	}
	ctx := context.Background()
	found := func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
		io.WriteString(c, f.Found(f.Query(q)))
	}
	lookup := func(t *testing.T, s *Port43Server, timeout time.Duration) (lifecycle.Lifecycle, error) {
		return f.New(t, s.Addr(), timeout).Lookup(ctx, domain)
	}

	t.Run("Found", func(t *testing.T) {
		var asked atomic.Value
		s := StartPort43(t, func(c net.Conn, q string, n int64, done <-chan struct{}) {
			asked.Store(f.Query(q))
			found(c, q, n, done)
		})
		lc, err := lookup(t, s, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if asked.Load() != domain {
			t.Errorf("the server was asked about %v, want %s", asked.Load(), domain)
		}
		if !lc.State.RegisteredFamily() || lc.Domain != domain || lc.CheckedAt.IsZero() {
			t.Errorf("got %+v, want a registered-family state for %s with checked_at", lc, domain)
		}
		if len(lc.Evidence) != 1 || lc.Evidence[0].Server != "127.0.0.1" || lc.Evidence[0].State != lc.State {
			t.Errorf("evidence %+v, want the answer naming the server's host", lc.Evidence)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) { io.WriteString(c, f.NotFound(f.Query(q))) })
		lc, err := lookup(t, s, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if lc.State != lifecycle.Available {
			t.Errorf("state %s, want available", lc.State)
		}
	})
	t.Run("Throttled", func(t *testing.T) {
		s := StartPort43(t, func(c net.Conn, q string, n int64, done <-chan struct{}) {
			if n == 1 {
				io.WriteString(c, f.Throttled)
				return
			}
			found(c, q, n, done)
		})
		p := f.New(t, s.Addr(), 5*time.Second)
		lc, err := p.Lookup(ctx, domain)
		notAvailable(t, lc, err)
		var te *status.ThrottledError
		if !errors.As(err, &te) || !status.Retryable(err) {
			t.Fatalf("err %v, want a retryable throttled error", err)
		}
		// Through the retry wrapper it answers on the next try.
		var sl instant
		lc, err = status.Retry(p, status.RetryOptions{Retries: 2, Sleep: sl.Sleep}).Lookup(ctx, domain)
		if err != nil || !lc.State.RegisteredFamily() {
			t.Fatalf("after retry: %v, %v", lc.State, err)
		}
	})
	t.Run("ThrottledThenReset", func(t *testing.T) {
		// Some servers give their reason and reset the connection.
		s := StartPort43(t, func(c net.Conn, _ string, _ int64, _ <-chan struct{}) {
			io.WriteString(c, f.Throttled)
			reset(c)
		})
		lc, err := lookup(t, s, 5*time.Second)
		notAvailable(t, lc, err)
		var te *status.ThrottledError
		if !errors.As(err, &te) {
			t.Errorf("err %v, want throttled", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		s := StartPort43(t, func(_ net.Conn, _ string, _ int64, done <-chan struct{}) { <-done })
		lc, err := lookup(t, s, 150*time.Millisecond)
		notAvailable(t, lc, err)
		if !status.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("timeout: %v, want a retryable deadline error", err)
		}
		// The caller's deadline ends a hanging lookup too.
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		lc, err = f.New(t, s.Addr(), time.Minute).Lookup(cctx, domain)
		notAvailable(t, lc, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller deadline: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("ResetMidAnswer", func(t *testing.T) {
		s := StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
			a := f.Found(f.Query(q))
			io.WriteString(c, a[:len(a)/2])
			reset(c)
		})
		lc, err := lookup(t, s, 5*time.Second)
		notAvailable(t, lc, err)
		if !status.Retryable(err) {
			t.Errorf("reset not retryable: %v", err)
		}
	})
	for name, answer := range map[string]string{
		"GarbageBinary": "\x1f\x8b\x08\x00\xfe\xff\r\n\x00\x9c==",
		"GarbageText":   "hello world\r\n",
		"EmptyAnswer":   "",
		"HTML":          "<html><body>502 Bad Gateway</body></html>\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := StartPort43(t, func(c net.Conn, _ string, _ int64, _ <-chan struct{}) { io.WriteString(c, answer) })
			lc, err := lookup(t, s, 5*time.Second)
			notAvailable(t, lc, err)
			if !status.Retryable(err) {
				t.Errorf("not retryable: %v", err)
			}
		})
	}
	t.Run("HugeAnswerCapped", func(t *testing.T) {
		s := StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
			// A not-found line, then terms of use until past the cap: a
			// cut answer must not pass for the not-found it starts with.
			io.WriteString(c, f.NotFound(f.Query(q)))
			pad := strings.Repeat("% terms of use, again and again and again.\r\n", 1000)
			for range 10 * f.MaxBytes / len(pad) {
				if _, err := io.WriteString(c, pad); err != nil {
					return // the client hung up once it had enough
				}
			}
		})
		lc, err := lookup(t, s, 10*time.Second)
		notAvailable(t, lc, err)
	})
	t.Run("SlowServer", func(t *testing.T) {
		s := StartPort43(t, func(c net.Conn, q string, n int64, done <-chan struct{}) {
			// Latency before the answer: the server is slow, not broken.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-done:
			}
			found(c, q, n, done)
		})
		lc, err := lookup(t, s, 5*time.Second)
		if err != nil || !lc.State.RegisteredFamily() {
			t.Fatalf("slow server: %v, %v", lc.State, err)
		}
	})
	t.Run("ChainNeverAvailable", func(t *testing.T) {
		// Every failure above, through the chain, is unknown with the error.
		faults := []func(c net.Conn, q string, n int64, done <-chan struct{}){
			func(c net.Conn, _ string, _ int64, _ <-chan struct{}) { io.WriteString(c, f.Throttled) },
			func(c net.Conn, _ string, _ int64, _ <-chan struct{}) { reset(c) },
			func(c net.Conn, _ string, _ int64, _ <-chan struct{}) { io.WriteString(c, "hello world\r\n") },
			func(c net.Conn, _ string, _ int64, _ <-chan struct{}) {},
		}
		for i, h := range faults {
			unknownThroughChain(t, f.New(t, StartPort43(t, h).Addr(), 5*time.Second), i)
		}
	})
}
