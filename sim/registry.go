package sim

import "strings"

// whoisStyle is the text format a registry's port-43 server answers in.
type whoisStyle uint8

const (
	styleVerisign whoisStyle = iota // thin registry with a registrar referral (.com, .net)
	styleICANN                      // thick ICANN-format registry (.org, .io, …)
	styleNominet                    // indented Nominet blocks (.uk)
	styleDENIC                      // DENIC key: value, no expiry (.de)
	styleJPRS                       // [Key] value (.jp)
)

// registryPolicy is how one suffix's registry runs an unrenewed name down.
// All durations are days after the expiry date E that was not renewed:
//
//	[E, E+grace)                          grace: still listed (auto-renew grace, renewable)
//	[E+grace, +redemption)                redemption (EPP redemptionPeriod; .eu/.nl quarantine)
//	[…, +pendingDelete)                   pending delete
//	after that                            available to anyone
//
// grace is drawn per epoch from [graceMin, graceMax].
type registryPolicy struct {
	suffix             string
	graceMin, graceMax int
	redemption         int
	pendingDelete      int
	// autoRenew: during grace the registry has already moved the expiry a
	// year forward and lists the name as autoRenewPeriod (Verisign style).
	autoRenew bool
	// publishesExpiry is false for DENIC, which shows no expiry date.
	publishesExpiry bool
	// rdap: the bootstrap file names the sim's RDAP server for the suffix.
	rdap  bool
	style whoisStyle
}

// policies lists every suffix the simulated registries sell, in a fixed
// order (the index is stored per domain).
var policies = []registryPolicy{
	{suffix: "com", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleVerisign},
	{suffix: "net", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleVerisign},
	{suffix: "org", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleICANN},
	{suffix: "io", graceMin: 0, graceMax: 30, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleICANN},
	{suffix: "dev", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleICANN},
	{suffix: "app", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleICANN},
	{suffix: "co", graceMin: 0, graceMax: 45, redemption: 30, pendingDelete: 5, autoRenew: true, publishesExpiry: true, rdap: true, style: styleICANN},
	// AFNIC: no auto-renew; the registrar deletes within days, then 30 days
	// of redemption and release.
	{suffix: "fr", graceMin: 0, graceMax: 10, redemption: 30, pendingDelete: 0, publishesExpiry: true, rdap: true, style: styleICANN},
	// Nominet: renewable for about 90 days after expiry, then cancelled and
	// released; no redemption state is visible.
	{suffix: "uk", graceMin: 90, graceMax: 92, publishesExpiry: true, rdap: true, style: styleNominet},
	{suffix: "co.uk", graceMin: 90, graceMax: 92, publishesExpiry: true, rdap: true, style: styleNominet},
	// DENIC: no expiry date is published; the registrar deletes the name
	// some days after the term ends (still "connect" until then), then 30
	// days of redemption ("Status: redemptionPeriod"), then free.
	{suffix: "de", graceMin: 0, graceMax: 30, redemption: 30, pendingDelete: 0, publishesExpiry: false, rdap: false, style: styleDENIC},
	// EURid and SIDN: 40 days of quarantine after deletion (redemption).
	{suffix: "eu", graceMin: 0, graceMax: 10, redemption: 40, publishesExpiry: true, rdap: true, style: styleICANN},
	{suffix: "nl", graceMin: 0, graceMax: 10, redemption: 40, publishesExpiry: true, rdap: true, style: styleICANN},
	// JPRS: deleted some weeks after expiry, straight to available.
	{suffix: "jp", graceMin: 0, graceMax: 30, publishesExpiry: true, rdap: false, style: styleJPRS},
}

func policyIndex(suffix string) int {
	for i, p := range policies {
		if p.suffix == suffix {
			return i
		}
	}
	return -1
}

// splitSuffix returns the registrable name's suffix when the sim sells it.
func splitSuffix(domain string) (label, suffix string, ok bool) {
	if l, ok := strings.CutSuffix(domain, ".co.uk"); ok && l != "" && !strings.Contains(l, ".") {
		return l, "co.uk", true
	}
	i := strings.IndexByte(domain, '.')
	if i <= 0 || i == len(domain)-1 {
		return "", "", false
	}
	label, suffix = domain[:i], domain[i+1:]
	if strings.Contains(suffix, ".") || policyIndex(suffix) < 0 {
		return label, suffix, false
	}
	return label, suffix, true
}

// registrar is a sponsoring registrar shown in RDAP and WHOIS.
type registrar struct {
	name   string
	ianaID int
	url    string
}

var registrars = []registrar{
	{"Simulated Registrar One, LLC", 9001, "https://registrar-one.example"},
	{"Simulated Names GmbH", 9002, "https://names-gmbh.example"},
	{"Simulated Domains SAS", 9003, "https://domains-sas.example"},
	{"Simulated Brand Protection Inc.", 9004, "https://brand.example"},
}
