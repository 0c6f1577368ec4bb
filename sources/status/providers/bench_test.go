package providers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
)

// rateRun drives n lookups through the production stack (Build: Domainr
// with its rate limit, concurrency bound, retries and breaker) against a
// loopback Domainr answering after latency, and returns the arrival times
// the server saw.
func rateRun(tb testing.TB, n int, rps float64, latency time.Duration, workers int) (arrivals, sent []time.Time) {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		// Latency is what the benchmark is about: the server is slow, and
		// lapse must keep the rate up by overlapping requests.
		time.Sleep(latency)
		fmt.Fprintf(w, `{"status":[{"domain":%q,"zone":"com","status":"active"}]}`, r.URL.Query().Get("domain"))
	}))
	defer srv.Close()
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	cfg.Providers.Chain = []string{"domainr"}
	cfg.Providers.Domainr.BaseURL = srv.URL
	cfg.Providers.Domainr.RatePerSecond = rps
	cfg.Providers.Domainr.Burst = 1
	cfg.Providers.Domainr.Concurrency = workers
	// sends records when the client hands each request to the network,
	// just below the rate limiter.
	sends := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	p, err := Build(cfg, Deps{Transport: sends, Getenv: env("LAPSE_DOMAINR_CLIENT_ID", "bench")})
	if err != nil {
		tb.Fatal(err)
	}
	jobs := make(chan string)
	var wg sync.WaitGroup
	var failed sync.Map
	for range workers * 2 {
		wg.Go(func() {
			for d := range jobs {
				lc, err := p.Lookup(context.Background(), d)
				if err != nil || lc.State != lifecycle.Registered {
					failed.Store(d, fmt.Sprint(lc.State, err, lc.Error))
				}
			}
		})
	}
	for i := range n {
		jobs <- fmt.Sprintf("d%d.com", i)
	}
	close(jobs)
	wg.Wait()
	failed.Range(func(k, v any) bool {
		tb.Errorf("%v: %v", k, v)
		return false
	})
	for _, ts := range [][]time.Time{arrivals, sent} {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return arrivals, sent
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// rates returns the achieved rate (requests over the span between the
// first and the last arrival) and the most arrivals in any window [t, t+1s).
func rates(at []time.Time) (achieved float64, maxWindow int) {
	if len(at) < 2 {
		return 0, len(at)
	}
	achieved = float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
	j := 0
	for i := range at {
		for j < len(at) && at[j].Sub(at[i]) < time.Second {
			j++
		}
		maxWindow = max(maxWindow, j-i)
	}
	return achieved, maxWindow
}

// BenchmarkPoliteness measures the rate the production stack achieves
// against a slow server: R = 20 requests/s, 100 ms per answer, eight
// lookups in flight. It reports the achieved rate (req/s and %_of_R, 95%
// is the target) and the most requests sent and arrived in any one second
// (R at most). It is a benchmark, not a test: wall-clock rates on a busy
// machine say little; TestLimiterRate (sources/status) holds the limiter
// to the rate on a clock of its own. Run with a fixed count so the run
// spans seconds:
//
//	go test -run '^$' -bench Politeness -benchtime 200x ./sources/status/providers/
func BenchmarkPoliteness(b *testing.B) {
	const r = 20.0
	at, sent := rateRun(b, b.N, r, 100*time.Millisecond, 8)
	achieved, maxWindow := rates(at)
	_, maxSent := rates(sent)
	b.ReportMetric(achieved, "req/s")
	b.ReportMetric(100*achieved/r, "%_of_R")
	b.ReportMetric(float64(maxWindow), "max_arrived_in_1s")
	b.ReportMetric(float64(maxSent), "max_sent_in_1s")
}
