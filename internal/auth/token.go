package auth

import (
	"net/http"
	"strings"
)

// QueryParam is the query parameter a subscriber may carry its token in
// (EventSource cannot set headers).
const QueryParam = "access_token"

// DefaultCookie is the cookie read for subscriber tokens unless
// Config.Cookie names another.
const DefaultCookie = "streamer_token"

// Source says where a token was found.
type Source string

// Where a token can come from.
const (
	SourceNone   Source = ""
	SourceHeader Source = "header"
	SourceCookie Source = "cookie"
	SourceQuery  Source = "query"
)

// SubscriberToken returns the subscriber token of r: from the
// "Authorization: Bearer" header, else the cookie named cookie, else the
// access_token query parameter. The first place that holds a token wins,
// even when what it holds turns out to be malformed. An Authorization header
// of another scheme (Basic, ...) is not a token and is skipped.
func SubscriberToken(r *http.Request, cookie string) (string, Source) {
	if tok, ok := bearer(r.Header); ok {
		return tok, SourceHeader
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
			return c.Value, SourceCookie
		}
	}
	if r.URL != nil {
		for _, v := range r.URL.Query()[QueryParam] {
			if v != "" {
				return v, SourceQuery
			}
		}
	}
	return "", SourceNone
}

// PublisherToken returns the token of the "Authorization: Bearer" header; a
// publisher's cookie and query are never read (a cookie would let any page
// the user visits publish in the user's name).
func PublisherToken(r *http.Request) (string, Source) {
	if tok, ok := bearer(r.Header); ok {
		return tok, SourceHeader
	}
	return "", SourceNone
}

// bearer finds the first Authorization header of scheme Bearer (the scheme
// is case-insensitive, RFC 7235) and returns its credentials with the
// surrounding blanks removed. "Bearer" with nothing after it yields an empty
// token with ok true: a token was offered, and it is malformed.
func bearer(h http.Header) (string, bool) {
	for _, v := range h.Values("Authorization") {
		v = strings.TrimLeft(v, " \t")
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		return strings.Trim(rest, " \t"), true
	}
	return "", false
}
