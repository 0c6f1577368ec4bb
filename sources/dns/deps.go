package dns

import (
	"cmp"
	"slices"
	"strings"
)

// Dependency is a registrable domain the mail path of Domain depends on.
type Dependency struct {
	Domain string // the address domain (Answer.Domain)
	Role   string // "mx" or "ns"
	Host   string // the host name (Link.Host, or one of its CNAMEs) inside Dep
	Dep    string // registrable domain of Host
	Pref   int
}

// Dependencies are the registrable domains (by the function given: lapse
// passes the ICANN PSL) of every link's host and CNAME target, minus names
// inside the address domain itself (in-bailiwick: equal to a.Domain or
// ending in "."+a.Domain), minus names whose registrable domain is
// a.Domain, minus names registrable rejects (ok false). There is one
// Dependency per (role, host), with the host's lowest preference: the
// same dep from two hosts is two rows. They are sorted by role ("mx"
// first), pref, host.
func Dependencies(a Answer, registrable func(host string) (string, bool)) []Dependency {
	domain := norm(a.Domain)
	type key struct{ role, host string }
	at := map[key]int{}
	var deps []Dependency
	for _, l := range a.Links {
		pref := l.Pref
		if l.Role != roleMX {
			pref = 0
		}
		for _, name := range append([]string{l.Host}, l.CNAMEs...) {
			h := norm(name)
			if h == "" || h == domain || strings.HasSuffix(h, "."+domain) {
				continue
			}
			dep, ok := registrable(h)
			dep = norm(dep)
			if !ok || dep == "" || dep == domain {
				continue
			}
			k := key{l.Role, h}
			if i, seen := at[k]; seen {
				deps[i].Pref = min(deps[i].Pref, pref)
				continue
			}
			at[k] = len(deps)
			deps = append(deps, Dependency{Domain: domain, Role: l.Role, Host: h, Dep: dep, Pref: pref})
		}
	}
	slices.SortFunc(deps, func(x, y Dependency) int {
		return cmp.Or(cmp.Compare(roleRank(x.Role), roleRank(y.Role)), cmp.Compare(x.Role, y.Role),
			cmp.Compare(x.Pref, y.Pref), strings.Compare(x.Host, y.Host))
	})
	return deps
}
