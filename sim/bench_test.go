package sim

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkNewWorld1M builds the large world: 1,000,000 addresses
// over 200,000 domains.
func BenchmarkNewWorld1M(b *testing.B) {
	for b.Loop() {
		w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 1_000_000, Domains: 200_000})
		if len(w.Emails) != 1_000_000 {
			b.Fatal(len(w.Emails))
		}
	}
}

// BenchmarkTruth1M computes the domain and address truth of the large world
// for one date.
func BenchmarkTruth1M(b *testing.B) {
	w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 1_000_000, Domains: 200_000})
	b.ResetTimer()
	for b.Loop() {
		w.DomainTruth(testStart.AddDate(0, 0, 30))
		w.AddressTruth(testStart.AddDate(0, 0, 30))
	}
}

func benchServers(b *testing.B) (*World, *Servers) {
	w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 200_000})
	s, err := Start(context.Background(), w, ServerOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return w, s
}

// BenchmarkRDAP measures RDAP domain lookups over loopback HTTP (keep-alive,
// 8 client goroutines per core); the reported req/s is the server's rate.
func BenchmarkRDAP(b *testing.B) {
	w, s := benchServers(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	var n atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := &w.Domains[int(n.Add(1))%len(w.Domains)]
			resp, err := c.Get(s.Endpoints().RDAP + "domain/" + d.Name)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "req/s")
}

// BenchmarkWHOIS measures port-43 queries: one TCP connection per query, as
// WHOIS clients do.
func BenchmarkWHOIS(b *testing.B) {
	w, s := benchServers(b)
	var n atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := &w.Domains[int(n.Add(1))%len(w.Domains)]
			c, err := net.Dial("tcp", s.Endpoints().WHOIS)
			if err != nil {
				b.Error(err)
				return
			}
			io.WriteString(c, d.Name+"\r\n")
			io.Copy(io.Discard, bufio.NewReader(c))
			c.Close()
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "req/s")
}
