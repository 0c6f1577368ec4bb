package address

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Fold is the one key form of a domain name lapse compares, stores and
// asks about: white space trimmed, lowercase A-labels (IDNA UTS-46, as
// normalizeHost maps hosts) and no trailing dot. A name IDNA rejects is
// only lowercased: Fold never fails, so it can key caches and overrides;
// validating a name is Normalize's job (or FoldStrict's).
//
// An ASCII name skips the IDNA mapping: for ASCII, UTS-46 lookup only
// lowercases (it leaves ASCII labels, xn-- ones included, as they are) or
// rejects, so the result is the same.
func Fold(name string) string {
	s := strings.TrimSpace(name)
	if isASCII(s) {
		return strings.TrimSuffix(strings.ToLower(s), ".")
	}
	if a, err := idna.Lookup.ToASCII(s); err == nil {
		s = a
	} else {
		s = strings.ToLower(s)
	}
	// After mapping, so ideographic and full-width trailing dots count too.
	return strings.TrimSuffix(s, ".")
}

// FoldStrict is Fold for a name that must be valid under IDNA UTS-46
// lookup: the error is IDNA's, and no fallback form is returned with it.
func FoldStrict(name string) (string, error) {
	a, err := idna.Lookup.ToASCII(strings.TrimSpace(name))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.ToLower(a), "."), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
