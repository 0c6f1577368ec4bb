package config

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

//go:embed example.toml
var example string

// Example returns a commented lapse.toml with every setting at its default.
func Example() string { return example }

// ErrConfig marks configuration errors (exit code 2).
var ErrConfig = errors.New("configuration error")

// Load reads the TOML file at path (none when path is empty; a missing
// ./lapse.toml is fine, a missing named file is not) over the defaults, then
// applies LAPSE_* environment overrides from environ.
func Load(path string, explicit bool, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			md, err := toml.Decode(string(b), &c)
			if err != nil {
				return c, fmt.Errorf("%w: config %s: %v", ErrConfig, path, err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				keys := make([]string, len(und))
				for i, k := range und {
					keys[i] = k.String()
				}
				return c, fmt.Errorf("%w: config %s: unknown keys %s (see `lapse config example`)", ErrConfig, path, strings.Join(keys, ", "))
			}
		case errors.Is(err, fs.ErrNotExist) && !explicit:
		default:
			return c, fmt.Errorf("%w: config %s: %v", ErrConfig, path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return c, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return c, nil
}

// EnvKeys lists the LAPSE_* variables that override settings, sorted.
func EnvKeys() []string {
	var keys []string
	walk(reflect.ValueOf(&Config{}).Elem(), "LAPSE", func(name string, _ reflect.Value) {
		keys = append(keys, name)
	})
	sort.Strings(keys)
	return keys
}

// applyEnv sets every scalar setting whose LAPSE_<PATH> variable is set,
// where PATH is the TOML path upper-cased and joined with "_"
// (providers.rdap.rate_per_second → LAPSE_PROVIDERS_RDAP_RATE_PER_SECOND).
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "LAPSE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "LAPSE", func(name string, f reflect.Value) {
		v, ok := env[name]
		if !ok {
			return
		}
		if err := setScalar(f, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
		}
	})
	return errors.Join(errs...)
}

func walk(v reflect.Value, prefix string, fn func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		f := v.Field(i)
		if sf.Anonymous && f.Kind() == reflect.Struct {
			walk(f, prefix, fn)
			continue
		}
		tag := strings.Split(sf.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		switch f.Kind() {
		case reflect.Struct:
			walk(f, name, fn)
		case reflect.Map:
		default:
			fn(name, f)
		}
	}
}

func setScalar(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("want a whole number")
		}
		f.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return errors.New("want a number")
		}
		f.SetFloat(n)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// RedactSource returns a source spec safe to print: a postgres URL loses its
// password and any password/sslpassword query parameter; key=value DSNs lose
// their password= value.
func RedactSource(s string) string {
	if IsPostgresURL(s) {
		u, err := url.Parse(s)
		if err != nil {
			return "postgres://[unparseable DSN redacted]"
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "redacted")
			}
		}
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "redacted")
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	if strings.Contains(s, "password=") {
		fields := strings.Fields(s)
		for i, f := range fields {
			if strings.HasPrefix(f, "password=") {
				fields[i] = "password=redacted"
			}
		}
		return strings.Join(fields, " ")
	}
	return s
}
