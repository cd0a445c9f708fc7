package auth

import (
	"net/http"
	"net/url"
	"strings"
)

// Redacted replaces a secret in a logged URL.
const Redacted = "REDACTED"

// RedactQuery returns rawQuery with the value of every access_token
// parameter replaced by REDACTED. A parameter's name is compared after
// unescaping, as url.ParseQuery (and so SubscriberToken) reads it, so
// "access%5Ftoken=..." is redacted too. A pair that cannot be unescaped, or
// that mentions access_token in any other way ("x=1;access_token=...",
// "ACCESS_TOKEN=..."), is replaced whole: it is not read as a token, but a
// client meant it as one. Everything else is kept byte for byte.
func RedactQuery(rawQuery string) string {
	pairs := strings.Split(rawQuery, "&")
	changed := false
	for i, pair := range pairs {
		rawKey, _, hasValue := strings.Cut(pair, "=")
		key, kerr := url.QueryUnescape(rawKey)
		whole, werr := url.QueryUnescape(pair)
		switch {
		case kerr == nil && key == QueryParam && hasValue:
			pairs[i] = rawKey + "=" + Redacted
			changed = true
		case kerr != nil, werr != nil, strings.Contains(strings.ToLower(whole), QueryParam):
			pairs[i] = Redacted
			changed = true
		}
	}
	if !changed {
		return rawQuery
	}
	return strings.Join(pairs, "&")
}

// RedactURL returns u as a string with access_token values and any
// userinfo password replaced by REDACTED. u is not modified.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.RawQuery = RedactQuery(u.RawQuery)
	c.ForceQuery = u.ForceQuery
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), Redacted)
		}
	}
	return c.String()
}

// RedactRequestURI is what a log line may say of r's URL: the request URI
// with access_token values redacted. Use it instead of r.URL.String() and
// r.RequestURI in every log line.
func RedactRequestURI(r *http.Request) string {
	if r.URL == nil {
		return ""
	}
	return RedactURL(r.URL)
}

// redactString redacts a URL held as a string; an unparsable one is
// replaced whole.
func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	return RedactURL(u)
}
