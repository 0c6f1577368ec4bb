// Package address normalizes email addresses: the host after the last
// unquoted @, mapped with IDNA UTS-46 to lowercase A-labels, and its
// registrable domain under the ICANN section of the Public Suffix List.
package address

// NOTE: temporary signature; the normalization rules land with the
// foundation issue.

// Result is one normalized address. Domain is empty and InvalidReason set
// when the address has no registrable domain.
type Result struct {
	Email         string
	Host          string
	Domain        string
	InvalidReason string
}

// Normalize normalizes one address.
func Normalize(email string) Result {
	return Result{Email: email, InvalidReason: "not_implemented"}
}
