package config

// DefaultUserAgent is the User-Agent of every request lapse sends to a
// status provider (RDAP servers and bootstrap, Domainr, Fastly) unless its
// caller names another: it says what lapse is and where to read about it.
const DefaultUserAgent = "lapse (+https://github.com/lapse-dev/lapse)"
