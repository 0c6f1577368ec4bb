package status

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxBody caps a provider's answer: a status answer is a few hundred
// bytes, so anything near this is a misbehaving server, not data.
const DefaultMaxBody = 1 << 20

// ErrBodyTooLarge is returned when an answer exceeds the body cap.
var ErrBodyTooLarge = errors.New("answer exceeds the size cap")

// ReadCapped reads at most max bytes of r; a longer body is an error that
// Is ErrBodyTooLarge (never a truncated answer that might parse as
// something it is not). A read error is returned as it is, for the caller
// to say what it was reading.
func ReadCapped(r io.Reader, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxBody
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, max)
	}
	return b, nil
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date. Zero means absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// ClassifyHTTP turns a non-2xx answer into a classified error: 429 and
// 403/422 with a rate-limit body → *ThrottledError (with Retry-After), 401 →
// ErrUnauthorized, 5xx and 408 → transient, other 4xx → *PermanentError.
// It returns nil for 2xx. body is a prefix of the answer, quoted briefly.
func ClassifyHTTP(code int, h http.Header, body []byte, now time.Time) error {
	if code >= 200 && code < 300 {
		return nil
	}
	base := fmt.Errorf("HTTP %d%s", code, quote(body))
	switch {
	case code == http.StatusTooManyRequests:
		return &ThrottledError{RetryAfter: ParseRetryAfter(h.Get("Retry-After"), now), Err: base}
	case (code == http.StatusForbidden || code == http.StatusUnprocessableEntity) && LooksThrottled(body):
		return &ThrottledError{RetryAfter: ParseRetryAfter(h.Get("Retry-After"), now), Err: base}
	case code == http.StatusUnauthorized:
		return fmt.Errorf("%w (HTTP 401)", ErrUnauthorized)
	case code >= 500, code == http.StatusRequestTimeout:
		return base
	default:
		return &PermanentError{Err: base}
	}
}

func quote(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	const max = 160
	if len(s) > max {
		s = s[:max] + "…"
	}
	return ": " + strconv.Quote(s)
}

// RedactURL strips the query and user info from a URL string: Domainr's
// client_id rides in the query and must never reach a log or an error.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	if u.RawQuery != "" {
		u.RawQuery = "[redacted]"
	}
	u.User = nil
	u.Fragment = ""
	return u.String()
}

// RedactError rewrites the URL inside a *url.Error (net/http puts the full
// request URL, query included, in every transport error) and replaces any
// of the secrets in the message. The error chain (timeouts, resets) is kept.
func RedactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	msg := err.Error()
	dirty := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			dirty = true
		}
	}
	if !dirty {
		return err
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return &redacted{msg: msg, err: err}
}

// redacted keeps the chain for errors.Is/As but prints the cleaned message.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
