package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	badger "github.com/dgraph-io/badger/v4"
)

// The mail path (issue 12): beside each address domain's lifecycle, the
// cache keeps the latest DNS answer of its MX hosts and name servers, as
// links to their registrable domains (the dependency domains, which are
// ordinary entries of the cache: looked up, scheduled and copied like any
// domain). Mail paths live under their own key prefix and do not change
// the states copy's token: the links copy (ExportLinks) is rewritten by
// the night that looked mail paths up.

const mailPrefix = "p/"

func mailKey(domain string) []byte { return []byte(mailPrefix + domain) }

// MailLink is one link of a mail path: the address domain's MX host or
// name server (or a name on its CNAME chain) Host, inside the
// registrable domain Dep.
type MailLink struct {
	Role string `json:"role"` // lifecycle.RoleMX or lifecycle.RoleNS
	Host string `json:"host"`
	Dep  string `json:"dep"`
	Pref int    `json:"pref,omitempty"`
	// FirstSeen is when lapse first saw the link: a dependency registered
	// before it is a provider the domain moved to, not a resurrection.
	FirstSeen time.Time `json:"first_seen"`
}

// MailObservation is one DNS lookup of a domain's mail path, as the DNS
// stage hands it to RecordMailPath. A role whose outcome is not
// conclusive (SERVFAIL, timeout, refused, error) says nothing: the links
// it had are kept.
type MailObservation struct {
	Domain         string
	CheckedAt      time.Time
	MX, NS         string // sources/dns outcomes
	MXConclusive   bool
	NSConclusive   bool
	NullMX         bool
	NSFromReferral bool
	Links          []MailLink // FirstSeen is set by RecordMailPath
	Error          string
	// Queries is the DNS messages the lookup sent; not journaled (it
	// depends on which concurrent lookup asked a shared host first).
	Queries int `json:"-"`
}

// MailPath is a domain's mail path entry.
type MailPath struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	// MX and NS are the latest lookup's outcomes; MXAt and NSAt when each
	// role last had a conclusive answer (nil: never).
	MX             string     `json:"mx"`
	NS             string     `json:"ns"`
	MXAt           *time.Time `json:"mx_at,omitempty"`
	NSAt           *time.Time `json:"ns_at,omitempty"`
	NullMX         bool       `json:"null_mx,omitempty"`
	NSFromReferral bool       `json:"ns_from_referral,omitempty"`
	Links          []MailLink `json:"links,omitempty"`
	Error          string     `json:"error,omitempty"`
	// Failures counts the consecutive lookups with a role not conclusive;
	// they are retried sooner (1, 2, 4, then 7 nights).
	Failures  int       `json:"failures,omitempty"`
	NextCheck time.Time `json:"next_check"`
}

// mergeMail folds observation o into the previous entry: each conclusive
// role replaces that role's links (keeping the first sighting of links
// seen before), a role that failed keeps its links; the next check is
// every later, or a back-off after a failure.
func mergeMail(prev MailPath, found bool, o MailObservation, every time.Duration) MailPath {
	e := MailPath{Domain: o.Domain, CheckedAt: o.CheckedAt.UTC(), MX: o.MX, NS: o.NS, Error: o.Error,
		NullMX: prev.NullMX, NSFromReferral: prev.NSFromReferral, MXAt: prev.MXAt, NSAt: prev.NSAt}
	first := map[string]time.Time{}
	for _, l := range prev.Links {
		first[l.Role+" "+l.Host] = l.FirstSeen
	}
	keep := func(role string) {
		for _, l := range prev.Links {
			if l.Role == role {
				e.Links = append(e.Links, l)
			}
		}
	}
	take := func(role string) {
		for _, l := range o.Links {
			if l.Role != role {
				continue
			}
			l.FirstSeen = e.CheckedAt
			if t, ok := first[l.Role+" "+l.Host]; ok && found {
				l.FirstSeen = t
			}
			e.Links = append(e.Links, l)
		}
	}
	at := e.CheckedAt
	if o.MXConclusive {
		take("mx")
		e.NullMX, e.MXAt = o.NullMX, &at
	} else {
		keep("mx")
	}
	if o.NSConclusive {
		take("ns")
		e.NSFromReferral, e.NSAt = o.NSFromReferral, &at
	} else {
		keep("ns")
	}
	slices.SortFunc(e.Links, func(a, b MailLink) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		if a.Pref != b.Pref {
			return a.Pref - b.Pref
		}
		return strings.Compare(a.Host, b.Host)
	})
	if o.MXConclusive && o.NSConclusive {
		e.NextCheck = e.CheckedAt.Add(every - NightSlack)
		return e
	}
	e.Failures = prev.Failures + 1
	e.NextCheck = days(e.CheckedAt, backoffNights(e.Failures))
	return e
}

// RecordMailPath merges a DNS lookup of a domain's mail path into its
// entry and returns the entry. every is how long a conclusive answer
// stands (dns.every).
func (c *Cache) RecordMailPath(ctx context.Context, o MailObservation, every time.Duration) (MailPath, error) {
	done, err := c.use(ctx)
	if err != nil {
		return MailPath{}, err
	}
	defer done()
	o.Domain = NormalizeDomain(o.Domain)
	if o.Domain == "" {
		return MailPath{}, errors.New("cache record mail path: no domain")
	}
	if o.CheckedAt.IsZero() {
		o.CheckedAt = c.now()
	}
	var out MailPath
	for range maxConflictRetries {
		if err = ctx.Err(); err != nil {
			break
		}
		err = c.db.Update(func(txn *badger.Txn) error {
			prev, found, err := getMail(txn, o.Domain)
			if err != nil {
				return err
			}
			out = mergeMail(prev, found, o, every)
			v, err := json.Marshal(out)
			if err != nil {
				return err
			}
			return txn.Set(mailKey(o.Domain), v)
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return MailPath{}, fmt.Errorf("cache record mail path %s: %w", o.Domain, err)
	}
	return out, nil
}

func getMail(txn *badger.Txn, domain string) (MailPath, bool, error) {
	item, err := txn.Get(mailKey(domain))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return MailPath{}, false, nil
	}
	if err != nil {
		return MailPath{}, false, err
	}
	var e MailPath
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &e) })
	if err != nil {
		return MailPath{}, false, fmt.Errorf("mail path entry %s: %w", domain, err)
	}
	return e, true, nil
}

// MailPathOf returns the mail path entry of domain, and whether there is one.
func (c *Cache) MailPathOf(ctx context.Context, domain string) (MailPath, bool, error) {
	done, err := c.use(ctx)
	if err != nil {
		return MailPath{}, false, err
	}
	defer done()
	var (
		e     MailPath
		found bool
	)
	err = c.db.View(func(txn *badger.Txn) error {
		var gerr error
		e, found, gerr = getMail(txn, NormalizeDomain(domain))
		return gerr
	})
	return e, found, err
}

// ScanMailPaths calls fn for every mail path entry in domain order, from
// one consistent view.
func (c *Cache) ScanMailPaths(ctx context.Context, fn func(MailPath) error) error {
	done, err := c.use(ctx)
	if err != nil {
		return err
	}
	defer done()
	return c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte(mailPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var e MailPath
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("mail path entry %s: %w", it.Item().Key(), err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// LinksSchema is the links files' schema (the links copy, a night's
// links): one row per link, or one row with NULL role, host and dep for a
// domain with no link outside itself.
var LinksSchema = arrow.NewSchema([]arrow.Field{
	{Name: "domain", Type: arrow.BinaryTypes.String},
	{Name: "checked_at", Type: tsUS, Nullable: true},
	{Name: "next_check", Type: tsUS, Nullable: true},
	{Name: "mx_outcome", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ns_outcome", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "null_mx", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "ns_from_referral", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "role", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "host", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "dep", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "pref", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "first_seen", Type: tsUS, Nullable: true},
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// MailScanner is what ExportLinks reads (*Cache).
type MailScanner interface {
	ScanMailPaths(ctx context.Context, fn func(MailPath) error) error
}

// ExportLinks writes every mail path of the cache to path as Parquet
// (LinksSchema), atomically, and returns the rows written.
func ExportLinks(ctx context.Context, c MailScanner, path string) (int, error) {
	return WriteLinks(path, func(add func(MailPath) error) error { return c.ScanMailPaths(ctx, add) })
}

// WriteLinks writes the mail paths each calls add with to path as
// Parquet (LinksSchema), atomically.
func WriteLinks(path string, each func(add func(MailPath) error) error) (int, error) {
	n := 0
	err := writeParquet(path, LinksSchema, func(b *array.RecordBuilder, next func() error) error {
		str := func(i int, s string) {
			if s == "" {
				b.Field(i).AppendNull()
				return
			}
			b.Field(i).(*array.StringBuilder).Append(s)
		}
		ts := func(i int, t time.Time) {
			if t.IsZero() {
				b.Field(i).AppendNull()
				return
			}
			b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(t.UTC().UnixMicro()))
		}
		row := func(e MailPath, l *MailLink) error {
			b.Field(0).(*array.StringBuilder).Append(e.Domain)
			ts(1, e.CheckedAt)
			ts(2, e.NextCheck)
			str(3, e.MX)
			str(4, e.NS)
			b.Field(5).(*array.BooleanBuilder).Append(e.NullMX)
			b.Field(6).(*array.BooleanBuilder).Append(e.NSFromReferral)
			if l == nil {
				for i := 7; i <= 11; i++ {
					b.Field(i).AppendNull()
				}
			} else {
				str(7, l.Role)
				str(8, l.Host)
				str(9, l.Dep)
				if l.Role == "mx" {
					b.Field(10).(*array.Int32Builder).Append(int32(l.Pref))
				} else {
					b.Field(10).AppendNull()
				}
				ts(11, l.FirstSeen)
			}
			str(12, e.Error)
			n++
			return next()
		}
		return each(func(e MailPath) error {
			if len(e.Links) == 0 {
				return row(e, nil)
			}
			for i := range e.Links {
				if err := row(e, &e.Links[i]); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return n, err
}
