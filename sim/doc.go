// Package sim is the registry simulator: a seeded world of domains with
// real lifecycles, served over loopback as Domainr, Fastly, RDAP and WHOIS,
// with the ground truth on the side. It is a simulation; production code
// paths never import it (only the `lapse sim` and `lapse demo` commands do).
package sim
