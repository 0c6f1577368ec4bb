// Package dns finds the mail path of a domain: the hosts its mail and its
// DNS depend on. It asks a recursive resolver for the domain's MX and NS
// records and, for every MX and NS host, the CNAME chain its address
// lookup follows; when the domain's own name servers do not answer, it
// asks the parent zone for the delegation instead. Dependencies turns an
// Answer into the registrable domains lapse then checks like address
// domains: whoever registers the lapsed domain of an MX host receives the
// mail of every domain using it, and whoever registers the lapsed domain
// of a name server answers the DNS of every domain delegated to it.
//
// Every question ends in an Outcome. Only OK, NoData and NXDomain are
// conclusive. SERVFAIL, timeouts, REFUSED and network errors say
// something about the resolver or the path to a server on one night, not
// about the domain: a resolver SERVFAILs when it runs out of time, when a
// DNSSEC chain breaks or when it is overloaded, and a timeout may be our
// own link. They are never evidence that a domain or a host is gone, and
// callers must not act on them; they are reported with the question and
// the server in Answer.Error so an operator can tell a flaky resolver
// from a dangling delegation. (A SERVFAIL for a domain's NS question is,
// though, the usual sign of a dangling delegation, which is why the
// parent zone is asked then: its referral names the servers anyway.)
package dns
