package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/time/rate"
)

// Outcome is how one DNS question ended.
type Outcome string

// The outcomes of a question.
const (
	OK       Outcome = "ok"       // records returned
	NoData   Outcome = "nodata"   // the name exists, no record of the type
	NXDomain Outcome = "nxdomain" // the name does not exist
	ServFail Outcome = "servfail" // SERVFAIL after the retries
	Timeout  Outcome = "timeout"  // no reply after the retries
	Refused  Outcome = "refused"  // REFUSED
	Failed   Outcome = "error"    // anything else (network error, malformed reply, other rcode)
)

// Conclusive reports whether the outcome says something about the name:
// OK, NoData and NXDomain. SERVFAIL, timeouts, refusals and errors are
// never evidence of anything.
func (o Outcome) Conclusive() bool {
	switch o {
	case OK, NoData, NXDomain:
		return true
	}
	return false
}

// Config configures a Resolver.
type Config struct {
	// Servers are the recursive resolvers, "host:port" or "host" (port
	// 53); IPv6 in brackets. Empty: the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is read when Servers is empty; default "/etc/resolv.conf".
	ResolvConf string
	// Timeout is per query attempt; default 3s.
	Timeout time.Duration
	// Retries are further attempts after a timeout, SERVFAIL or network
	// error, rotating over Servers; default (0) 2; negative means 0.
	Retries int
	// RatePerSecond caps the queries per second over all servers; 0 = no
	// limit.
	RatePerSecond float64
	// Burst of the rate limit; default 1 when a rate is set.
	Burst int
	// ReferralPort is the port the parent zone's authoritative servers are
	// asked on (default 53). Tests and the simulator serve on a loopback
	// port.
	ReferralPort int
	// Log receives a debug line per non-conclusive question; nil: discard.
	Log *slog.Logger
	// Now stamps Answer.CheckedAt; nil: time.Now.
	Now func() time.Time
}

// Link is one host on the mail path.
type Link struct {
	Role   string   `json:"role"`             // "mx" or "ns"
	Host   string   `json:"host"`             // as the record names it: lowercase A-label, no trailing dot
	CNAMEs []string `json:"cnames,omitempty"` // the CNAME chain the host's address lookup followed, in order (targets only)
	Pref   int      `json:"pref"`             // MX preference; 0 for ns
}

// Answer is the mail path of one domain.
type Answer struct {
	Domain         string    `json:"domain"`
	CheckedAt      time.Time `json:"checked_at"`
	MX             Outcome   `json:"mx"`
	NS             Outcome   `json:"ns"`
	NullMX         bool      `json:"null_mx,omitempty"` // RFC 7505 "MX 0 ." : the domain receives no mail
	NSFromReferral bool      `json:"ns_from_referral,omitempty"`
	Links          []Link    `json:"links,omitempty"` // MX links sorted by (pref, host), then NS links sorted by host
	Error          string    `json:"error,omitempty"` // what went wrong for a non-conclusive outcome, e.g. "mx: servfail from 127.0.0.1:5353"
	Queries        int       `json:"queries"`         // DNS messages sent (attempts and TCP retries included)
}

// The roles of a link.
const (
	roleMX = "mx"
	roleNS = "ns"
)

const (
	defaultResolvConf = "/etc/resolv.conf"
	defaultTimeout    = 3 * time.Second
	defaultRetries    = 2
	ednsSize          = 1232
	// maxChain bounds a CNAME chain (resolvers stop well before).
	maxChain = 16
	// failTTL is how long a non-conclusive host or parent-zone lookup is
	// remembered, so that a broken host shared by thousands of domains
	// does not cost its timeouts for each of them, yet is asked again
	// later in the night. Conclusive ones are remembered for the
	// Resolver's life (one night).
	failTTL = 30 * time.Second
)

// Resolver looks up mail paths. It is safe for concurrent use; it
// remembers the hosts' CNAME chains and the parent zones' servers for its
// life, which is meant to be one night.
type Resolver struct {
	servers      []string
	timeout      time.Duration
	retries      int
	limiter      *rate.Limiter // nil: no limit
	referralPort int
	log          *slog.Logger
	now          func() time.Time
	udp, tcp     *mdns.Client

	hosts memo[hostInfo] // host name → its address lookup
	zones memo[zoneInfo] // zone name → its servers' addresses
}

// New builds a Resolver. It fails when no server is configured (and the
// resolv.conf named cannot be read or names none), a server address is
// malformed, or the referral port or the rate is out of range. Its errors
// are not prefixed with "dns": the caller says which stage failed.
func New(cfg Config) (*Resolver, error) {
	var servers []string
	if len(cfg.Servers) > 0 {
		for _, s := range cfg.Servers {
			a, err := serverAddr(s, "53")
			if err != nil {
				return nil, fmt.Errorf("[dns] servers: %w", err)
			}
			servers = append(servers, a)
		}
	} else {
		file := cfg.ResolvConf
		if file == "" {
			file = defaultResolvConf
		}
		cc, err := mdns.ClientConfigFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("no resolver: [dns] servers is empty and %s cannot be read: %w", file, err)
		}
		port := cc.Port
		if port == "" {
			port = "53"
		}
		for _, s := range cc.Servers {
			a, err := serverAddr(s, port)
			if err != nil {
				return nil, fmt.Errorf("nameserver in %s: %w", file, err)
			}
			servers = append(servers, a)
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("no resolver: [dns] servers is empty and %s names no nameserver", file)
		}
	}
	r := &Resolver{
		servers:      servers,
		timeout:      cfg.Timeout,
		retries:      cfg.Retries,
		referralPort: cfg.ReferralPort,
		log:          cfg.Log,
		now:          cfg.Now,
	}
	if r.timeout <= 0 {
		r.timeout = defaultTimeout
	}
	switch {
	case r.retries == 0:
		r.retries = defaultRetries
	case r.retries < 0:
		r.retries = 0
	}
	switch p := r.referralPort; {
	case p == 0:
		r.referralPort = 53
	case p < 0 || p > 65535:
		return nil, fmt.Errorf("referral port %d is not a port", p)
	}
	switch q := cfg.RatePerSecond; {
	case math.IsNaN(q) || q < 0 || math.IsInf(q, 0):
		return nil, fmt.Errorf("rate %v queries per second is not a rate (0 means no limit)", q)
	case q > 0:
		b := cfg.Burst
		if b < 1 {
			b = 1
		}
		r.limiter = rate.NewLimiter(rate.Limit(q), b)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.udp = &mdns.Client{Net: "udp", Timeout: r.timeout, UDPSize: ednsSize}
	r.tcp = &mdns.Client{Net: "tcp", Timeout: r.timeout}
	return r, nil
}

// Servers are the resolvers asked, as "host:port", in the order tried.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// serverAddr turns "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6
// address into "host:port".
func serverAddr(s, defPort string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server address")
	}
	host, port := s, defPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("server %q: port %q is not a port", s, port)
		}
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Count(s, ":") == 1 {
		return "", fmt.Errorf("server %q: %w", s, err)
	}
	bare, _, _ := strings.Cut(host, "%") // an IPv6 zone: fe80::1%eth0
	if net.ParseIP(bare) == nil {
		if strings.Contains(host, ":") {
			return "", fmt.Errorf("server %q: not an address (IPv6 goes in brackets: [::1]:53)", s)
		}
		if _, ok := mdns.IsDomainName(host); !ok || strings.ContainsAny(host, " \t\\") {
			return "", fmt.Errorf("server %q: not an address or a host name", s)
		}
	}
	return net.JoinHostPort(host, port), nil
}
