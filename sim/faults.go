package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Faults are the misbehaviours one simulated server injects. Rates are
// fractions of requests in 0..1, drawn deterministically from the world
// seed, the server, the domain, the date and how many times that domain
// was asked before (so a retry can succeed).
type Faults struct {
	// Latency is added to every answer.
	Latency time.Duration
	// RatePerSecond caps the request rate (token bucket of Burst); over it
	// the server answers 429 with Retry-After (HTTP) or "limit exceeded"
	// text (WHOIS). 0 means no cap.
	RatePerSecond float64
	Burst         int
	// RetryAfter is the wait a 429 asks for (default 1s).
	RetryAfter time.Duration
	// ErrorRate answers 5xx (HTTP) or a server error line (WHOIS).
	ErrorRate float64
	// ResetRate resets the connection without an answer.
	ResetRate float64
	// TimeoutRate hangs until the client gives up, at most HangMax
	// (default 30s) or until the servers close.
	TimeoutRate float64
	HangMax     time.Duration
	// MalformedRate answers a truncated or garbled body.
	MalformedRate float64
	// UnknownRate (Domainr and Fastly only) answers the best-effort
	// status "unknown", as when an upstream registry is down.
	UnknownRate float64
}

// Validate checks the rates.
func (f Faults) Validate(server string) error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"error rate", f.ErrorRate}, {"reset rate", f.ResetRate}, {"timeout rate", f.TimeoutRate}, {"malformed rate", f.MalformedRate}, {"unknown rate", f.UnknownRate}} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("sim %s faults: %s %v is outside 0..1", server, r.name, r.v)
		}
	}
	if f.ErrorRate+f.ResetRate+f.TimeoutRate+f.MalformedRate+f.UnknownRate > 1 {
		return fmt.Errorf("sim %s faults: the fault rates add up to more than 1", server)
	}
	if f.RatePerSecond < 0 || f.Latency < 0 {
		return fmt.Errorf("sim %s faults: negative rate limit or latency", server)
	}
	return nil
}

type fault uint8

const (
	faultNone fault = iota
	faultThrottle
	faultReset
	faultTimeout
	faultError
	faultMalformed
	faultUnknown
)

// injector decides the fault of each request for one server.
type injector struct {
	f       Faults
	seed    uint64
	server  uint64
	limiter *rate.Limiter
	done    <-chan struct{}

	mu       sync.Mutex
	attempts map[string]uint32
}

func newInjector(f Faults, seed uint64, server string, done <-chan struct{}) *injector {
	h := fnv.New64a()
	h.Write([]byte(server))
	in := &injector{f: f, seed: seed, server: h.Sum64(), done: done, attempts: map[string]uint32{}}
	if f.RatePerSecond > 0 {
		in.limiter = rate.NewLimiter(rate.Limit(f.RatePerSecond), max(f.Burst, 1))
	}
	if in.f.RetryAfter <= 0 {
		in.f.RetryAfter = time.Second
	}
	if in.f.HangMax <= 0 {
		in.f.HangMax = 30 * time.Second
	}
	return in
}

// decide returns the fault for this request about key on day.
func (in *injector) decide(key string, day int32) fault {
	if in.limiter != nil && !in.limiter.Allow() {
		return faultThrottle
	}
	f := in.f
	if f.ErrorRate+f.ResetRate+f.TimeoutRate+f.MalformedRate+f.UnknownRate == 0 {
		return faultNone
	}
	in.mu.Lock()
	n := in.attempts[key]
	in.attempts[key] = n + 1
	in.mu.Unlock()
	h := fnv.New64a()
	h.Write([]byte(key))
	x := mix(mix(in.seed^in.server, h.Sum64()), uint64(day)<<32|uint64(n))
	u := float64(x>>11) / (1 << 53)
	for _, c := range []struct {
		rate float64
		f    fault
	}{{f.ResetRate, faultReset}, {f.TimeoutRate, faultTimeout}, {f.ErrorRate, faultError}, {f.MalformedRate, faultMalformed}, {f.UnknownRate, faultUnknown}} {
		if u < c.rate {
			return c.f
		}
		u -= c.rate
	}
	return faultNone
}

// delay waits the configured latency; false when ctx ended first.
func (in *injector) delay(ctx context.Context) bool {
	if in.f.Latency <= 0 {
		return true
	}
	t := time.NewTimer(in.f.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-in.done:
		return false
	}
}

// hang blocks like a server that never answers, until ctx ends, the
// servers close or HangMax passes.
func (in *injector) hang(ctx context.Context) {
	t := time.NewTimer(in.f.HangMax)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-in.done:
	}
}

// ParseFaults reads a fault spec such as
// "latency=20ms,rate=50,burst=10,error=0.02,reset=0.01,timeout=0.01,hang=5s,malformed=0.01,unknown=0.05,retry_after=2s"
// over base. An empty spec returns base.
func ParseFaults(spec string, base Faults) (Faults, error) {
	f := base
	err := eachSpec(spec, "fault", func(k, v string) error {
		var err error
		dur := func(d *time.Duration) { *d, err = time.ParseDuration(v) }
		num := func(x *float64) { *x, err = strconv.ParseFloat(v, 64) }
		switch k {
		case "latency":
			dur(&f.Latency)
		case "hang":
			dur(&f.HangMax)
		case "retry_after":
			dur(&f.RetryAfter)
		case "rate":
			num(&f.RatePerSecond)
		case "burst":
			f.Burst, err = strconv.Atoi(v)
		case "error":
			num(&f.ErrorRate)
		case "reset":
			num(&f.ResetRate)
		case "timeout":
			num(&f.TimeoutRate)
		case "malformed":
			num(&f.MalformedRate)
		case "unknown":
			num(&f.UnknownRate)
		default:
			return errUnknownKey{"latency, rate, burst, retry_after, error, reset, timeout, hang, malformed or unknown"}
		}
		return err
	})
	return f, err
}

// errUnknownKey is a fault spec's key that names no setting.
type errUnknownKey struct{ want string }

func (e errUnknownKey) Error() string { return "unknown key (want " + e.want + ")" }

// eachSpec calls set with the key and value of each "key=value" of a
// comma-separated fault spec; what names the spec in errors ("fault",
// "dns fault"), which quote the pair (the key alone when it is unknown).
func eachSpec(spec, what string, set func(k, v string) error) error {
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%s %q: want key=value", what, kv)
		}
		if err := set(k, v); err != nil {
			if u, ok := err.(errUnknownKey); ok {
				return fmt.Errorf("%s %q: %v", what, k, u)
			}
			return fmt.Errorf("%s %q: %v", what, kv, err)
		}
	}
	return nil
}
