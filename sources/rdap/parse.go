// Package rdap looks domains up over RDAP (RFC 9083/9224): the IANA
// bootstrap file picks the registry's server per TLD, a small client of our
// own over net/http asks it, and Parse turns the answer into a lifecycle.
//
// The client is ours rather than openrdap's because openrdap's client is not
// safe for concurrent use (its issue #31) and we need our own status-code
// policy anyway: 404 is an answer, 429 and rate-limit 403/422 are throttling.
package rdap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// domainObject is the part of an RDAP domain response (or error object)
// lapse reads.
type domainObject struct {
	ObjectClassName string   `json:"objectClassName"`
	LDHName         string   `json:"ldhName"`
	UnicodeName     string   `json:"unicodeName"`
	Status          []string `json:"status"`
	Events          []struct {
		Action string `json:"eventAction"`
		Date   string `json:"eventDate"`
	} `json:"events"`
	ErrorCode   int      `json:"errorCode"`
	Title       string   `json:"title"`
	Description []string `json:"description"`
}

// eventLayouts are the date forms seen in the wild; RFC 3339 is the
// standard, the others come from registries that drop the zone (read as UTC).
var eventLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func parseEventDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range eventLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Parse maps a captured RDAP answer (body and HTTP status) for domain to a
// lifecycle at asOf. A JSON error object with errorCode stands for that HTTP
// status. Throttling (429, rate-limit 403/422) is a *status.ThrottledError;
// other failures are errors: Parse never turns them into a state.
// An empty domain takes the answer's ldhName.
func Parse(body []byte, httpStatus int, domain string, asOf time.Time) (lifecycle.Lifecycle, error) {
	return parse(lifecycle.DefaultRules, body, httpStatus, domain, asOf, 0)
}

func parse(rules lifecycle.Rules, body []byte, httpStatus int, domain string, asOf time.Time, retryAfter time.Duration) (lifecycle.Lifecycle, error) {
	domain = address.Fold(domain)
	var obj domainObject
	jsonErr := json.Unmarshal(bytes.TrimSpace(body), &obj)
	if httpStatus == 0 || httpStatus == http.StatusOK {
		if jsonErr != nil {
			return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: answer is not JSON: %w", domain, jsonErr)
		}
		if obj.ErrorCode != 0 {
			httpStatus = obj.ErrorCode
		} else {
			httpStatus = http.StatusOK
		}
	}
	switch {
	case httpStatus == http.StatusOK:
	case httpStatus == http.StatusNotFound:
		return rules.FromRDAP(lifecycle.RDAPAnswer{Domain: domain, HTTPStatus: http.StatusNotFound}, asOf), nil
	case httpStatus == http.StatusTooManyRequests:
		return lifecycle.Lifecycle{}, &status.ThrottledError{RetryAfter: retryAfter, Err: fmt.Errorf("rdap %s: HTTP 429%s", domain, errorText(obj, body))}
	case (httpStatus == http.StatusForbidden || httpStatus == http.StatusUnprocessableEntity) && status.LooksThrottled(body):
		return lifecycle.Lifecycle{}, &status.ThrottledError{RetryAfter: retryAfter, Err: fmt.Errorf("rdap %s: HTTP %d%s", domain, httpStatus, errorText(obj, body))}
	case httpStatus >= 500:
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: server error HTTP %d%s", domain, httpStatus, errorText(obj, body))
	case httpStatus == http.StatusForbidden:
		// A plain 403 is a refusal we cannot read as an answer; it may
		// lift later (an IP block), so it stays retryable.
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: forbidden (HTTP 403)%s", domain, errorText(obj, body))
	default:
		return lifecycle.Lifecycle{}, &status.PermanentError{Err: fmt.Errorf("rdap %s: HTTP %d%s", domain, httpStatus, errorText(obj, body))}
	}
	if obj.ObjectClassName != "" && !strings.EqualFold(obj.ObjectClassName, "domain") {
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: answer is a %q object, not a domain", domain, obj.ObjectClassName)
	}
	name := address.Fold(obj.LDHName)
	if obj.ObjectClassName == "" && name == "" {
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: answer is not an RDAP domain object", domain)
	}
	if domain == "" {
		domain = name
	} else if name != "" && name != domain {
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: answer is for %q", domain, name)
	}
	a := lifecycle.RDAPAnswer{Domain: domain, HTTPStatus: http.StatusOK, Statuses: obj.Status}
	for _, e := range obj.Events {
		if d, ok := parseEventDate(e.Date); ok {
			a.Events = append(a.Events, lifecycle.Event{Action: e.Action, Date: d})
		}
	}
	return rules.FromRDAP(a, asOf), nil
}

// errorText is a short excerpt of an error answer for the error message.
func errorText(obj domainObject, body []byte) string {
	var s string
	switch {
	case obj.Title != "" || len(obj.Description) > 0:
		s = strings.TrimSpace(obj.Title + " " + strings.Join(obj.Description, " "))
	default:
		s = strings.Join(strings.Fields(string(body)), " ")
	}
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return ": " + strings.ToValidUTF8(s, "?")
}
