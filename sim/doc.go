// Package sim is the registry simulator: a seeded world of domains with
// real lifecycles, served over loopback as Domainr, Fastly, RDAP and WHOIS,
// with the ground truth on the side. It is a simulation; production code
// paths never import it (only the `lapse sim` and `lapse demo` commands do).
//
// # World
//
// NewWorld(Params{Seed, Start, Emails, Domains}) builds users, addresses and
// domains with math/rand/v2 PCG from the seed, in a fixed order (no map
// iteration decides anything): the same Params give the same world. Large
// mail providers (gmail.com, outlook.com, gmx.de, …) hold about 55% of the
// addresses and never lapse; company domains (15%) rarely lapse; personal
// and project domains (30%) across .com .net .org .io .dev .app .co .de
// .uk .co.uk .fr .nl .eu .jp lapse most. A few are IDN (bücher123.de →
// xn--bcher123-65a.de), some company addresses use a subdomain host
// (mail.example.co.uk), 0.3% are malformed (no @, address or IP literals,
// empty local part, a bare suffix).
//
// Each domain has an ordered list of registration epochs. A holder who stops
// renewing does so at an anniversary E; then, per registry (registry.go):
//
//	gTLDs, .io, .co   E → grace 0–45 d (auto-renew: expiry shown +1 year,
//	                  status autoRenewPeriod, clientHold for some) →
//	                  redemption 30 d → pendingDelete 5 d → available
//	.fr               0–10 d → redemption 30 d → available
//	.uk, .co.uk       renewable ~90 d after expiry (Nominet), then available;
//	                  no redemption state is visible
//	.de               no expiry published (DENIC); "connect" for 0–30 d after
//	                  the term (truth: grace), redemption 30 d
//	                  ("Status: redemptionPeriod"), then "free"
//	.eu, .nl          0–10 d, then 40 d quarantine (truth: redemption)
//	.jp               0–30 d after expiry, then available
//
// An available name may be registered again by someone else (25% within 2
// days, the rest after weeks or months): a new epoch, a resurrection.
// Holders who keep a name are renewed RenewLead days before each
// anniversary. Every state is a pure function of the domain and the day
// (PhaseAt), so the truth for any date needs no replay.
//
// # Mail layer
//
// After the addresses, from a PCG stream of its own (so nothing above
// changes), the world gets a mail layer (mail.go): three big shared mail
// hosts and three big DNS hosts that never lapse, and one small mail host
// and one small DNS host per ~150 company and personal domains, whose own
// domains lapse like personal ones (KindMailHost, KindDNSHost; appended
// after every other domain and served like them). Every domain has a
// MailSetup (World.Mail): most MX mx1/mx2.<big mail host> and NS
// ns1/ns2.<big DNS host>; ~10% MX on a small mail host, ~8% NS on a small
// DNS host, ~10% in-bailiwick name servers, ~3% MX mail.<domain> CNAME'd to
// a small mail host, ~4% self-hosted MX, ~2% null MX; providers and hosts
// run their own. The registrable domains of the out-of-bailiwick MX hosts
// (CNAME targets) and name servers are the domain's dependencies
// (MailDependencies).
//
// # Truth and accounts
//
// DomainTruth(date) gives each domain's state in ARCHITECTURE.md's names and
// the dates the registry publishes; AddressTruth(date) says for each address
// whether its holder's registration reached redemption or later
// (ShouldFlag, RiskStart), became registrable by others (AtRisk,
// RegistrableAt) or was registered by someone else (ReregisteredAt), and,
// for an address whose own domain is fine, whether a dependency of its
// mail setup lapsed or was registered by someone else since it was added
// (MailAtRisk, MailRiskStart, MailRegistrableAt, MailVia); MailTruth(date)
// sums it per host domain.
// Addresses(date) is PyPI's user_emails table on that date, honouring
// Unverify; Seed writes it to PostgreSQL (COPY), CSV or JSONL. Account,
// UnverifyAccount and RestoreAccount read and change one row at the world's
// date with apply's and revert's guards (the in-memory target of
// sinks/apply).
//
// # Servers
//
// Start serves the world at its current date (Advance, SetDate, or POST
// /sim/advance?days=N on the control endpoint): Domainr v2 /v2/status,
// Fastly /domain-management/v1/tools/status, RDAP with an IANA-style
// bootstrap that leaves out .de and .jp, and port-43 WHOIS in Verisign
// (thin, with a referral to a registrar server), ICANN thick, Nominet,
// DENIC and JPRS styles, which also answers IANA-style TLD referral
// queries. Faults (latency, rate limits answered with 429 + Retry-After or
// "WHOIS LIMIT EXCEEDED", 5xx, resets, hangs, malformed bodies, Domainr
// "unknown") are drawn per server from the seed, the domain, the day and
// the attempt number.
//
// The DNS server (dns.go, github.com/miekg/dns, UDP and TCP on one port)
// is a recursive resolver for queries with RD=1: NXDOMAIN for a name
// whose domain is unknown or out of the zone on the date, SERVFAIL when
// every name server of the domain lies in a domain out of the zone (a
// dangling delegation), otherwise the setup's MX (null MX as "MX 0 ."),
// NS, CNAME chains and A 127.0.0.x. With RD=0 it is every TLD's server:
// a referral to the domain's name servers while the domain is in the
// zone, NXDOMAIN otherwise. Its faults (DNSFaults: SERVFAIL, no answer, a
// truncated UDP answer) are drawn from the seed, the domain, the day and
// the query type.
package sim
