// Package config holds lapse's configuration: the typed settings of every
// stage with their defaults and validation, loaded from a TOML file, then
// LAPSE_* environment variables, then flags, in increasing precedence.
//
// Secrets (database passwords, API keys) are never written in the file's
// values that lapse prints: they come from the environment (`*_env` keys
// naming a variable) or a file path (`*_file` keys), and Secret values
// render as "[redacted]".
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the whole of lapse's configuration.
type Config struct {
	// DataDir is where snapshots, observations, changesets, the cache and
	// the lifecycle database live.
	DataDir string `toml:"data_dir"`
	// Source names the account data: postgres://…, csv:PATH or jsonl:PATH.
	Source string `toml:"source"`
	// All includes unverified addresses in the snapshot.
	All bool `toml:"all"`

	Postgres PostgresConfig `toml:"postgres"`
	CSV      FileConfig     `toml:"csv"`
	JSONL    FileConfig     `toml:"jsonl"`

	Providers ProvidersConfig `toml:"providers"`
	Resolve   ResolveConfig   `toml:"resolve"`
	Cache     CacheConfig     `toml:"cache"`
	Policy    PolicyConfig    `toml:"policy"`
	Brake     BrakeConfig     `toml:"brake"`
	Retention RetentionConfig `toml:"retention"`
	Run       RunConfig       `toml:"run"`
	Apply     ApplyConfig     `toml:"apply"`
	DNS       DNSConfig       `toml:"dns"`
}

// DNSConfig configures the mail path (issue 12): the DNS lookups of each
// address domain's MX hosts and name servers, whose registrable domains
// are then checked like address domains.
type DNSConfig struct {
	// Enabled turns the mail path on. The pypi policy ignores it (PyPI
	// does not look at the mail path).
	Enabled bool `toml:"enabled"`
	// Servers are the recursive resolvers ("host:port" or "host"); empty
	// takes the nameservers of ResolvConf.
	Servers    []string `toml:"servers"`
	ResolvConf string   `toml:"resolv_conf"`
	// ReferralPort is the port the parent zone's servers are asked on when
	// a domain's own servers do not answer (53; the simulator's differs).
	ReferralPort int `toml:"referral_port"`
	// Every is how often an address domain's mail path is looked up again
	// (a failed lookup is retried sooner, backing off like the domain
	// lookups); a re-registered address domain is looked up at once.
	Every Duration `toml:"every"`
	// Limits: the rate is of DNS queries; the timeout is per query;
	// budget_per_night caps the domains looked up per night.
	Limits
}

// PostgresConfig describes the account database table lapse reads.
// Defaults follow PyPI warehouse's user_emails table.
type PostgresConfig struct {
	// PasswordEnv names an environment variable holding the password, used
	// when the DSN has none. PasswordFile names a file holding it.
	PasswordEnv  string `toml:"password_env"`
	PasswordFile string `toml:"password_file"`

	Table         string `toml:"table"`
	IDColumn      string `toml:"id_column"`
	UserIDColumn  string `toml:"user_id_column"`
	EmailColumn   string `toml:"email_column"`
	VerifiedCol   string `toml:"verified_column"`
	PrimaryColumn string `toml:"primary_column"`
	// CreatedColumn and VerifiedAtColumn are optional; empty means the
	// table has none.
	CreatedColumn    string `toml:"created_column"`
	VerifiedAtColumn string `toml:"verified_at_column"`
	// Where is an extra SQL filter ANDed to the query, e.g. "user_id IS NOT NULL".
	Where string `toml:"where"`
}

// FileConfig maps a CSV header or JSONL field names to lapse's fields.
// Empty entries take the default name (the field's own name).
type FileConfig struct {
	ID         string `toml:"id"`
	UserID     string `toml:"user_id"`
	Email      string `toml:"email"`
	Verified   string `toml:"verified"`
	Primary    string `toml:"primary"`
	Created    string `toml:"created"`
	VerifiedAt string `toml:"verified_at"`
}

// ProvidersConfig configures the status providers and their order.
type ProvidersConfig struct {
	// Chain is the provider order, e.g. ["domainr", "rdap", "whois"]. Empty
	// means the default: RDAP then WHOIS, with Domainr or Fastly first when
	// a key for it is configured.
	Chain   []string      `toml:"chain"`
	Domainr DomainrConfig `toml:"domainr"`
	Fastly  FastlyConfig  `toml:"fastly"`
	RDAP    RDAPConfig    `toml:"rdap"`
	WHOIS   WHOISConfig   `toml:"whois"`
}

// Limits are the politeness settings shared by every provider.
type Limits struct {
	// RatePerSecond is the request rate towards the provider (and per
	// remote host for RDAP and WHOIS); 0 takes the provider's default.
	RatePerSecond float64  `toml:"rate_per_second"`
	Burst         int      `toml:"burst"`
	Concurrency   int      `toml:"concurrency"`
	Timeout       Duration `toml:"timeout"`
	Retries       int      `toml:"retries"`
	// BudgetPerNight caps the lookups this provider may spend in one night;
	// 0 means no cap.
	BudgetPerNight int `toml:"budget_per_night"`
	// BreakerThreshold consecutive failed attempts (per remote host for
	// RDAP and WHOIS) open the circuit breaker for BreakerCooldown, during
	// which lookups fail at once instead of hammering a sick server.
	BreakerThreshold int      `toml:"breaker_threshold"`
	BreakerCooldown  Duration `toml:"breaker_cooldown"`
}

// DomainrConfig configures the Domainr v2 status API.
type DomainrConfig struct {
	BaseURL string `toml:"base_url"`
	// ClientIDEnv/ClientIDFile hold the commercial client_id; MashapeKeyEnv/
	// MashapeKeyFile the RapidAPI key. Either enables the provider.
	ClientIDEnv    string `toml:"client_id_env"`
	ClientIDFile   string `toml:"client_id_file"`
	MashapeKeyEnv  string `toml:"mashape_key_env"`
	MashapeKeyFile string `toml:"mashape_key_file"`
	Limits
}

// FastlyConfig configures Fastly's domain status API.
type FastlyConfig struct {
	BaseURL string `toml:"base_url"`
	KeyEnv  string `toml:"key_env"`
	KeyFile string `toml:"key_file"`
	Limits
}

// RDAPConfig configures RDAP lookups.
type RDAPConfig struct {
	// BootstrapURL is IANA's DNS bootstrap file; it is cached in the data
	// dir and refreshed when older than BootstrapMaxAge.
	BootstrapURL    string   `toml:"bootstrap_url"`
	BootstrapMaxAge Duration `toml:"bootstrap_max_age"`
	// EmbeddedFallback lets the copy of the bootstrap embedded in lapse
	// (2022) stand in when the default BootstrapURL can be neither
	// downloaded nor read from the data dir. Any other BootstrapURL (a
	// mirror, a test registry on loopback) never falls back to it, which
	// would send the night's domains to the real registries' servers.
	EmbeddedFallback bool `toml:"embedded_fallback"`
	// Servers overrides the bootstrap per TLD: {"dev" = "https://…/"}.
	Servers map[string]string `toml:"servers"`
	Limits
}

// WHOISConfig configures port-43 WHOIS lookups.
type WHOISConfig struct {
	// Servers overrides the WHOIS server per TLD: {"de" = "whois.denic.de:43"}.
	Servers map[string]string `toml:"servers"`
	// IANAServer answers referral queries for TLDs without an override.
	IANAServer string `toml:"iana_server"`
	MaxBytes   int    `toml:"max_bytes"`
	Limits
}

// ResolveConfig configures the resolve stage as a whole.
type ResolveConfig struct {
	Concurrency int `toml:"concurrency"`
	// Budget caps the night's lookups over all providers; 0 means no cap.
	Budget int `toml:"budget"`
	// MaxUnknownFraction: a night whose share of the snapshot's domains
	// with state unknown (no source could tell) is above it is degraded:
	// its changeset is written, `lapse run` exits 4. 0 disables.
	MaxUnknownFraction float64 `toml:"max_unknown_fraction"`
	// AuthoritativeEvery: a chain that asks a status API (Domainr,
	// Fastly) before RDAP/WHOIS asks RDAP/WHOIS about a domain at least
	// this often, even while the status API says "active", so every
	// domain's registration and expiry dates stay known (re-registrations,
	// the expiry schedule). Also asked: a domain with no authoritative
	// answer yet, one whose known expiry is near or passed, one whose
	// status flags changed. 0 takes the default (90 days).
	AuthoritativeEvery Duration `toml:"authoritative_every"`
}

// CacheConfig configures the Badger cache of domain lifecycles.
type CacheConfig struct {
	// Dir defaults to DATA_DIR/cache.
	Dir string `toml:"dir"`
	// DropAfter: "lapse cache gc" drops entries not looked up for this
	// long (domains no snapshot names any more); 0 never drops.
	DropAfter Duration `toml:"drop_after"`
}

// PolicyConfig configures the email policy.
type PolicyConfig struct {
	// Name is "corroborated" (default) or "pypi".
	Name string `toml:"name"`
	// WatchWindow is how close to expiry a registered domain becomes expiring.
	WatchWindow Duration `toml:"watch_window"`
	// ConfirmNights is how many nights a best-effort decisive answer must
	// repeat to count without authoritative corroboration.
	ConfirmNights int `toml:"confirm_nights"`
}

// BrakeConfig configures the safety brake on a night's changeset.
type BrakeConfig struct {
	// MaxFraction of verified addresses one night may un-verify.
	MaxFraction float64 `toml:"max_fraction"`
	// MaxCount of addresses one night may un-verify; 0 means no count cap.
	MaxCount int `toml:"max_count"`
	// Protected domains are never un-verified without review.
	Protected []string `toml:"protected"`
}

// RetentionConfig bounds how long the nightly files holding addresses are
// kept.
type RetentionConfig struct {
	// Nights of snapshots/date=D and decisions/date=D kept, tonight
	// included: older ones are deleted after a night finishes. 0 keeps
	// everything. Changesets, observations and the lifecycle database are
	// never deleted.
	Nights int `toml:"nights"`
}

// RunConfig holds the nightly run's own guards.
type RunConfig struct {
	// MinVerifiedFraction: a snapshot with fewer verified addresses than
	// this fraction of the previous finished night's stops the night after
	// the snapshot (an empty or partial export), unless
	// `lapse run --accept-shrink`. 0 disables.
	MinVerifiedFraction float64 `toml:"min_verified_fraction"`
	// MinFreeBytes is the free space the data dir must have before each
	// stage; below it the night stops cleanly. 0 disables.
	MinFreeBytes int64 `toml:"min_free_bytes"`
}

// ApplyConfig configures `lapse apply` and `lapse revert`: how a reviewed
// changeset reaches the account database (the table and columns are the
// [postgres] ones the snapshot reads).
type ApplyConfig struct {
	// DSN is the account database; empty takes source when it is a
	// postgres:// DSN. The password never comes from here: PGPASSWORD,
	// postgres.password_env or postgres.password_file.
	DSN string `toml:"dsn"`
	// MaxAge refuses a changeset whose night is older than this (unless
	// --allow-stale): the account table has moved on since its snapshot.
	MaxAge Duration `toml:"max_age"`
	// Reason is written to the unverify_reason column (PyPI's wording);
	// ReasonColumn names it ("" writes no reason).
	Reason       string `toml:"reason"`
	ReasonColumn string `toml:"reason_column"`
	// WriteDomainStatus also sets PyPI's domain_last_checked and
	// domain_last_status columns from each row's evidence.
	WriteDomainStatus   bool   `toml:"write_domain_status"`
	DomainCheckedColumn string `toml:"domain_checked_column"`
	DomainStatusColumn  string `toml:"domain_status_column"`
	// AuditTable is the account-database table (created if missing) with
	// one row per change apply or revert made.
	AuditTable string `toml:"audit_table"`
	// BatchSize rows are changed per transaction; a changeset of at most
	// BatchSize rows is one transaction.
	BatchSize int `toml:"batch_size"`
}

// Default returns the configuration lapse runs with when nothing is set.
func Default() Config {
	return Config{
		DataDir: "lapse-data",
		Postgres: PostgresConfig{
			Table:         "user_emails",
			IDColumn:      "id",
			UserIDColumn:  "user_id",
			EmailColumn:   "email",
			VerifiedCol:   "verified",
			PrimaryColumn: "primary",
		},
		Providers: ProvidersConfig{
			Domainr: DomainrConfig{BaseURL: "https://api.domainr.com", ClientIDEnv: "LAPSE_DOMAINR_CLIENT_ID", MashapeKeyEnv: "LAPSE_DOMAINR_MASHAPE_KEY", Limits: Limits{RatePerSecond: 5, Burst: 5, Concurrency: 4, Timeout: Duration(15 * time.Second), Retries: 3, BreakerThreshold: 5, BreakerCooldown: Duration(time.Minute)}},
			Fastly:  FastlyConfig{BaseURL: "https://api.fastly.com", KeyEnv: "LAPSE_FASTLY_KEY", Limits: Limits{RatePerSecond: 5, Burst: 5, Concurrency: 4, Timeout: Duration(15 * time.Second), Retries: 3, BreakerThreshold: 5, BreakerCooldown: Duration(time.Minute)}},
			RDAP: RDAPConfig{
				BootstrapURL:     "https://data.iana.org/rdap/dns.json",
				BootstrapMaxAge:  Duration(24 * time.Hour),
				EmbeddedFallback: true,
				Limits:           Limits{RatePerSecond: 2, Burst: 2, Concurrency: 8, Timeout: Duration(20 * time.Second), Retries: 3, BreakerThreshold: 5, BreakerCooldown: Duration(time.Minute)},
			},
			WHOIS: WHOISConfig{
				IANAServer: "whois.iana.org:43",
				MaxBytes:   256 << 10,
				Limits:     Limits{RatePerSecond: 0.5, Burst: 1, Concurrency: 4, Timeout: Duration(20 * time.Second), Retries: 2, BreakerThreshold: 5, BreakerCooldown: Duration(time.Minute)},
			},
		},
		Resolve: ResolveConfig{Concurrency: 16, MaxUnknownFraction: 0.2, AuthoritativeEvery: Duration(90 * 24 * time.Hour)},
		Cache:   CacheConfig{DropAfter: Duration(180 * 24 * time.Hour)},
		Policy:  PolicyConfig{Name: "corroborated", WatchWindow: Duration(30 * 24 * time.Hour), ConfirmNights: 2},
		Brake:   BrakeConfig{MaxFraction: 0.005},
		Run:     RunConfig{MinVerifiedFraction: 0.5, MinFreeBytes: 256 << 20},
		DNS: DNSConfig{Enabled: true, ResolvConf: "/etc/resolv.conf", ReferralPort: 53, Every: Duration(90 * 24 * time.Hour),
			Limits: Limits{RatePerSecond: 50, Burst: 10, Concurrency: 16, Timeout: Duration(3 * time.Second), Retries: 2}},
		Apply: ApplyConfig{
			MaxAge: Duration(3 * 24 * time.Hour), Reason: "domain status invalid", ReasonColumn: "unverify_reason",
			DomainCheckedColumn: "domain_last_checked", DomainStatusColumn: "domain_last_status",
			AuditTable: "lapse_audit", BatchSize: 5000,
		},
	}
}

// Validate checks the settings that every command relies on.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty: set data_dir in lapse.toml, LAPSE_DATA_DIR or --data-dir"))
	}
	switch c.Policy.Name {
	case "corroborated", "pypi":
	default:
		errs = append(errs, fmt.Errorf("policy.name %q is not a policy: use \"corroborated\" or \"pypi\"", c.Policy.Name))
	}
	if c.Brake.MaxFraction < 0 || c.Brake.MaxFraction > 1 {
		errs = append(errs, fmt.Errorf("brake.max_fraction %v is outside 0..1", c.Brake.MaxFraction))
	}
	if c.DNS.Enabled {
		if c.DNS.Every.Std() < 24*time.Hour {
			errs = append(errs, fmt.Errorf("dns.every %s must be at least a day", c.DNS.Every.Std()))
		}
		if p := c.DNS.ReferralPort; p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("dns.referral_port %d is not a port: use 53 unless the parent zone's servers listen elsewhere", p))
		}
		if len(c.DNS.Servers) == 0 && c.DNS.ResolvConf == "" {
			errs = append(errs, errors.New("dns has neither servers nor resolv_conf: set [dns] servers, or resolv_conf to the system's /etc/resolv.conf, or enabled = false"))
		}
	}
	if c.Policy.ConfirmNights < 1 {
		errs = append(errs, fmt.Errorf("policy.confirm_nights %d must be at least 1", c.Policy.ConfirmNights))
	}
	if f := c.Resolve.MaxUnknownFraction; f < 0 || f > 1 {
		errs = append(errs, fmt.Errorf("resolve.max_unknown_fraction %v is outside 0..1 (0 disables the check)", f))
	}
	if f := c.Run.MinVerifiedFraction; f < 0 || f > 1 {
		errs = append(errs, fmt.Errorf("run.min_verified_fraction %v is outside 0..1 (0 disables the check)", f))
	}
	if c.Resolve.AuthoritativeEvery < 0 {
		errs = append(errs, fmt.Errorf("resolve.authoritative_every %v is negative: use a duration like \"90d\" (0 takes the default, 90 days)", c.Resolve.AuthoritativeEvery.Std()))
	}
	if c.Run.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("run.min_free_bytes %d is negative: use 0 to disable the check, or the bytes the data dir must have free", c.Run.MinFreeBytes))
	}
	if c.Retention.Nights < 0 {
		errs = append(errs, fmt.Errorf("retention.nights %d is negative: use 0 to keep every night, or the number of nights to keep", c.Retention.Nights))
	}
	if c.Apply.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("apply.batch_size %d must be at least 1", c.Apply.BatchSize))
	}
	if c.Apply.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("apply.max_age %v is negative", c.Apply.MaxAge.Std()))
	}
	if c.Apply.AuditTable == "" {
		errs = append(errs, errors.New("apply.audit_table is empty: name the account-database table apply records its changes in (default lapse_audit)"))
	}
	for name, l := range map[string]Limits{"domainr": c.Providers.Domainr.Limits, "fastly": c.Providers.Fastly.Limits,
		"rdap": c.Providers.RDAP.Limits, "whois": c.Providers.WHOIS.Limits} {
		if l.BreakerThreshold < 0 || l.BreakerCooldown < 0 {
			errs = append(errs, fmt.Errorf("providers.%s.breaker_threshold and breaker_cooldown must not be negative (0 takes the default: 5 failures, 1m)", name))
		}
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written in TOML as a string ("30s", "720h")
// or, for whole days, "30d".
type Duration time.Duration

// UnmarshalText parses "90s", "36h" or "30d".
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n {
			return fmt.Errorf("duration %q: want a whole number of days like \"30d\"", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration like \"15s\" or days like \"30d\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Secret is a value that must never be printed.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[redacted]" }

// GoString redacts the secret in %#v.
func (Secret) GoString() string { return "[redacted]" }

// MarshalText redacts the secret in JSON and TOML.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret's value for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// ReadSecret returns the secret held in the environment variable env or in
// the file path file (env wins when both are set). An empty result with no
// error means neither was configured.
func ReadSecret(what, env, file string) (Secret, error) {
	if env != "" {
		if v, ok := os.LookupEnv(env); ok && v != "" {
			return Secret(v), nil
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: read secret file %s: %w", what, file, err)
		}
		return Secret(strings.TrimSpace(string(b))), nil
	}
	return "", nil
}
