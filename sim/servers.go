package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/sources/address"
)

// ServerOptions configure the simulated servers.
type ServerOptions struct {
	// Per-server fault injection.
	Domainr, Fastly, RDAP, WHOIS Faults
	// DNS are the DNS server's faults (recursive queries only).
	DNS DNSFaults
	// Dir is where the key files the Config names are written; empty means
	// a temporary folder removed by Close.
	Dir string
	// DomainrClientID, DomainrMashapeKey and FastlyKey are the credentials
	// the servers accept; empty ones are derived from the seed.
	DomainrClientID, DomainrMashapeKey, FastlyKey string
	// Log receives one line per server error (nil: discarded).
	Log *slog.Logger
}

// Endpoints names where each simulated server listens.
type Endpoints struct {
	Domainr        string `json:"domainr"`         // base URL of the Domainr v2 API
	Fastly         string `json:"fastly"`          // base URL of the Fastly API
	RDAPBootstrap  string `json:"rdap_bootstrap"`  // URL of the IANA-style bootstrap file
	RDAP           string `json:"rdap"`            // RDAP base URL (…/rdap/)
	WHOIS          string `json:"whois"`           // host:port of the registry WHOIS (also answers IANA-style TLD queries)
	WHOISRegistrar string `json:"whois_registrar"` // host:port of the registrar WHOIS the thin registry refers to
	Control        string `json:"control"`         // base URL of the control API (/sim/date, /sim/advance)
	DNS            string `json:"dns"`             // host:port of the DNS server (UDP and TCP): recursive with RD=1, the TLDs' servers with RD=0
	Config         string `json:"config"`          // a lapse TOML configuration pointing at the servers
}

// Servers are the running simulated servers of one world.
type Servers struct {
	w    *World
	opts ServerOptions
	ep   Endpoints
	log  *slog.Logger

	done    chan struct{}
	https   []*http.Server
	whois   []net.Listener
	wg      sync.WaitGroup
	tmpDir  string
	closeMu sync.Once
	conns   sync.Map // net.Conn → struct{}, open WHOIS connections

	dns        []*dns.Server // UDP and TCP
	dnsQueries atomic.Int64
}

// Start starts the Domainr, Fastly, RDAP, WHOIS and control servers of w on
// free 127.0.0.1 ports. They answer from w at its current date until Close
// or until ctx ends.
func Start(ctx context.Context, w *World, opts ServerOptions) (*Servers, error) {
	for name, f := range map[string]Faults{"domainr": opts.Domainr, "fastly": opts.Fastly, "rdap": opts.RDAP, "whois": opts.WHOIS} {
		if err := f.Validate(name); err != nil {
			return nil, err
		}
	}
	if err := opts.DNS.Validate(); err != nil {
		return nil, err
	}
	s := &Servers{w: w, opts: opts, done: make(chan struct{}), log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seed := w.Params.Seed
	if s.opts.DomainrClientID == "" {
		s.opts.DomainrClientID = fmt.Sprintf("sim-domainr-%016x", mix(seed, 1))
	}
	if s.opts.DomainrMashapeKey == "" {
		s.opts.DomainrMashapeKey = fmt.Sprintf("sim-mashape-%016x", mix(seed, 2))
	}
	if s.opts.FastlyKey == "" {
		s.opts.FastlyKey = fmt.Sprintf("sim-fastly-%016x", mix(seed, 3))
	}
	fail := func(err error) (*Servers, error) {
		s.Close()
		return nil, err
	}
	var err error
	if s.ep.Domainr, err = s.serveHTTP(s.domainrHandler(newInjector(opts.Domainr, seed, "domainr", s.done))); err != nil {
		return fail(err)
	}
	if s.ep.Fastly, err = s.serveHTTP(s.fastlyHandler(newInjector(opts.Fastly, seed, "fastly", s.done))); err != nil {
		return fail(err)
	}
	rdapBase, err := s.serveHTTP(s.rdapHandler(newInjector(opts.RDAP, seed, "rdap", s.done)))
	if err != nil {
		return fail(err)
	}
	s.ep.RDAP = rdapBase + "/rdap/"
	s.ep.RDAPBootstrap = rdapBase + "/rdap/bootstrap/dns.json"
	if s.ep.Control, err = s.serveHTTP(s.controlHandler()); err != nil {
		return fail(err)
	}
	regLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("sim whois registrar: %w", err))
	}
	s.whois = append(s.whois, regLn)
	// The thin registry refers to the registrar by the name "localhost":
	// WHOIS clients skip a referral to the host they just asked.
	s.ep.WHOISRegistrar = "localhost:" + strconv.Itoa(regLn.Addr().(*net.TCPAddr).Port)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("sim whois: %w", err))
	}
	s.whois = append(s.whois, ln)
	s.ep.WHOIS = ln.Addr().String()
	in := newInjector(opts.WHOIS, seed, "whois", s.done)
	s.serveWHOIS(ln, in, false)
	s.serveWHOIS(regLn, in, true)
	if err := s.startDNS(); err != nil {
		return fail(err)
	}

	if s.opts.Dir == "" {
		if s.tmpDir, err = os.MkdirTemp("", "lapse-sim-"); err != nil {
			return fail(fmt.Errorf("sim: key folder: %w", err))
		}
		s.opts.Dir = s.tmpDir
	}
	if err := s.writeKeys(); err != nil {
		return fail(err)
	}
	s.ep.Config = s.config()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// Endpoints returns where the servers listen, with the ready Config.
func (s *Servers) Endpoints() Endpoints { return s.ep }

// Config returns a lapse TOML configuration whose providers point at the
// servers (domainr → rdap → whois, keys in files under the Dir) and whose
// [dns] section points the mail path at the DNS server.
func (s *Servers) Config() string { return s.ep.Config }

// World returns the world the servers answer from.
func (s *Servers) World() *World { return s.w }

// Close stops every server and waits for their goroutines. It is safe to
// call twice.
func (s *Servers) Close() error {
	s.closeMu.Do(func() {
		close(s.done)
		for _, h := range s.https {
			h.Close()
		}
		for _, ln := range s.whois {
			ln.Close()
		}
		s.conns.Range(func(k, _ any) bool {
			k.(net.Conn).Close()
			return true
		})
		s.stopDNS()
		s.wg.Wait()
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
	})
	return nil
}

func (s *Servers) serveHTTP(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sim: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.https = append(s.https, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("sim http server", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// KeyFiles are the credential files the Config names.
const (
	domainrKeyFile = "domainr_client_id"
	fastlyKeyFile  = "fastly_key"
)

func (s *Servers) writeKeys() error {
	for name, v := range map[string]string{domainrKeyFile: s.opts.DomainrClientID, fastlyKeyFile: s.opts.FastlyKey} {
		if err := atomicfile.WriteFile(filepath.Join(s.opts.Dir, name), []byte(v+"\n"), 0o600); err != nil {
			return fmt.Errorf("sim: write key file: %w", err)
		}
	}
	return nil
}

func (s *Servers) config() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# lapse configuration for the registry SIMULATOR (seed %d): its providers point at\n# loopback servers answering from a simulated world, not at real registries.\n\n", s.w.Params.Seed)
	b.WriteString("[providers]\nchain = [\"domainr\", \"rdap\", \"whois\"]\n\n")
	fmt.Fprintf(&b, "[providers.domainr]\nbase_url = %s\nclient_id_env = \"\"\nclient_id_file = %s\nmashape_key_env = \"\"\n", q(s.ep.Domainr), q(filepath.Join(s.opts.Dir, domainrKeyFile)))
	b.WriteString("rate_per_second = 200.0\nburst = 50\nconcurrency = 8\ntimeout = \"5s\"\nretries = 2\n\n")
	fmt.Fprintf(&b, "[providers.fastly]\nbase_url = %s\nkey_env = \"\"\nkey_file = %s\n", q(s.ep.Fastly), q(filepath.Join(s.opts.Dir, fastlyKeyFile)))
	b.WriteString("rate_per_second = 200.0\nburst = 50\nconcurrency = 8\ntimeout = \"5s\"\nretries = 2\n\n")
	fmt.Fprintf(&b, "[providers.rdap]\nbootstrap_url = %s\n", q(s.ep.RDAPBootstrap))
	b.WriteString("rate_per_second = 200.0\nburst = 50\nconcurrency = 8\ntimeout = \"5s\"\nretries = 2\n\n")
	fmt.Fprintf(&b, "[providers.whois]\niana_server = %s\n", q(s.ep.WHOIS))
	b.WriteString("rate_per_second = 200.0\nburst = 50\nconcurrency = 8\ntimeout = \"5s\"\nretries = 2\n\n")
	b.WriteString("# Every suffix without an RDAP server in the bootstrap, named directly.\n[providers.whois.servers]\n")
	var tlds []string
	for _, p := range policies {
		if !p.rdap {
			tlds = append(tlds, p.suffix)
		}
	}
	sort.Strings(tlds)
	for _, t := range tlds {
		fmt.Fprintf(&b, "%s = %s\n", t, q(s.ep.WHOIS))
	}
	port := s.ep.DNS[strings.LastIndexByte(s.ep.DNS, ':')+1:]
	b.WriteString("\n# The mail path: the sim's DNS server is the recursive resolver (RD=1) and, on the\n# same port, every TLD's server (RD=0: referrals).\n")
	fmt.Fprintf(&b, "[dns]\nenabled = true\nservers = [%s]\nreferral_port = %s\n", q(s.ep.DNS), port)
	b.WriteString("rate_per_second = 2000.0\nburst = 200\nconcurrency = 16\ntimeout = \"2s\"\nretries = 2\n")
	return b.String()
}

// controlHandler serves GET /sim/date and POST /sim/advance?days=N.
func (s *Servers) controlHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(rw http.ResponseWriter) {
		writeJSON(rw, http.StatusOK, "application/json", map[string]any{"date": s.w.Date().Format(time.DateOnly), "day": s.w.Day()})
	}
	mux.HandleFunc("GET /sim/date", func(rw http.ResponseWriter, r *http.Request) { reply(rw) })
	mux.HandleFunc("POST /sim/advance", func(rw http.ResponseWriter, r *http.Request) {
		days := 1
		if v := r.URL.Query().Get("days"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 36500 {
				writeJSON(rw, http.StatusBadRequest, "application/json", map[string]string{"error": "days must be a whole number 0..36500"})
				return
			}
			days = n
		}
		s.w.Advance(days)
		reply(rw)
	})
	return mux
}

func writeJSON(rw http.ResponseWriter, code int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(rw, "sim: encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", contentType)
	rw.Header().Set("Content-Length", strconv.Itoa(len(b)))
	rw.WriteHeader(code)
	rw.Write(b)
}

// query is a domain name as a client asked for it, resolved against the
// world.
type query struct {
	name   string  // A-label, lowercase
	suffix string  // the sim suffix; "" when the sim sells none
	bare   bool    // the name is itself a suffix (a zone)
	domain *Domain // nil when never registered
}

// parseQuery normalizes a queried name; an error means bad syntax.
func (w *World) parseQuery(raw string) (query, error) {
	a, err := address.FoldStrict(raw)
	if err != nil {
		return query{}, fmt.Errorf("invalid domain name %q: %v", raw, err)
	}
	if a == "" {
		return query{}, errors.New("empty domain")
	}
	if err := checkLDH(a); err != nil {
		return query{}, fmt.Errorf("invalid domain name %q: %v", raw, err)
	}
	if !strings.Contains(a, ".") && policyIndex(a) < 0 {
		return query{name: a}, nil
	}
	q := query{name: a}
	if policyIndex(a) >= 0 {
		q.suffix, q.bare = a, true
		return q, nil
	}
	// reduce a subdomain to the registrable name under the sim's suffixes
	labels := strings.Split(a, ".")
	for i := 0; i+1 < len(labels); i++ {
		cand := strings.Join(labels[i:], ".")
		if _, sfx, ok := splitSuffix(cand); ok {
			q.name, q.suffix = cand, sfx
			q.domain, _ = w.Lookup(cand)
			return q, nil
		}
	}
	return q, nil
}

func (s *Servers) phase(q query) (Phase, int32) {
	day := s.w.day.Load()
	if q.domain == nil {
		return Phase{Epoch: -1, Registered: never, Expires: never, Changed: never, Registrable: never}, day
	}
	return s.w.PhaseAt(q.domain, day), day
}

// reset drops the connection under an HTTP handler without an answer.
func reset(rw http.ResponseWriter) {
	hj, ok := rw.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST rather than FIN
	}
	c.Close()
}

// httpFault serves the faults every HTTP server shares; true when it
// answered (the handler must stop).
func httpFault(rw http.ResponseWriter, r *http.Request, in *injector, f fault) bool {
	switch f {
	case faultThrottle:
		rw.Header().Set("Retry-After", strconv.Itoa(int(max(in.f.RetryAfter.Seconds(), 1))))
		writeJSON(rw, http.StatusTooManyRequests, "application/json", map[string]string{"message": "Too many requests: rate limit exceeded (simulated)"})
		return true
	case faultReset:
		reset(rw)
		return true
	case faultTimeout:
		in.hang(r.Context())
		reset(rw)
		return true
	case faultError:
		code := http.StatusServiceUnavailable
		if len(r.URL.String())%2 == 0 {
			code = http.StatusBadGateway
		}
		rw.Header().Set("Content-Type", "text/html")
		rw.WriteHeader(code)
		io.WriteString(rw, "<html><body><h1>"+strconv.Itoa(code)+" "+http.StatusText(code)+"</h1>simulated upstream failure</body></html>\n")
		return true
	}
	return false
}

// checkLDH checks a name is letters, digits and hyphens in labels of
// 1..63 octets, at most 253 in all.
func checkLDH(a string) error {
	if len(a) > 253 {
		return errors.New("longer than 253 octets")
	}
	for _, l := range strings.Split(a, ".") {
		if l == "" || len(l) > 63 {
			return errors.New("empty label or label over 63 octets")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("label starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q not allowed", c)
			}
		}
	}
	return nil
}
