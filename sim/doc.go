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
// # Truth and accounts
//
// DomainTruth(date) gives each domain's state in ARCHITECTURE.md's names and
// the dates the registry publishes; AddressTruth(date) says for each address
// whether its holder's registration reached redemption or later
// (ShouldFlag, RiskStart), became registrable by others (AtRisk,
// RegistrableAt) or was registered by someone else (ReregisteredAt).
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
package sim
