// Package sources is where lapse's data comes from. Its sub-packages hold
// the email sources (postgres, csv, jsonl exports), address normalization
// (address), and the domain status providers (domainr, fastly, rdap, whois)
// with the machinery they share (status: the Provider interface, error
// classes, politeness wrappers and the provider chain).
package sources
