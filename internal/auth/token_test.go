package auth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubscriberToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		header  []string
		cookie  string
		query   string
		wantTok string
		wantSrc Source
	}{
		{"none", nil, "", "", "", SourceNone},
		{"header", []string{"Bearer abc"}, "c", "access_token=q", "abc", SourceHeader},
		{"header scheme any case, blanks trimmed", []string{"  bEaReR   abc  "}, "", "", "abc", SourceHeader},
		{"empty bearer is an offered, malformed token", []string{"Bearer"}, "c", "", "", SourceHeader},
		{"other scheme skipped", []string{"Basic abc"}, "c", "", "c", SourceCookie},
		{"second header of scheme Bearer", []string{"Basic abc", "Bearer def"}, "", "", "def", SourceHeader},
		{"cookie", nil, "c", "access_token=q", "c", SourceCookie},
		{"query", nil, "", "a=1&access_token=q", "q", SourceQuery},
		{"query escaped name", nil, "", "access%5Ftoken=q", "q", SourceQuery},
		{"empty query value skipped", nil, "", "access_token=&access_token=q", "q", SourceQuery},
		{"other query names ignored", nil, "", "token=q&ACCESS_TOKEN=q", "", SourceNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/events?"+tc.query, nil)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "streamer_token", Value: tc.cookie})
			}
			tok, src := SubscriberToken(r, "streamer_token")
			require.Equal(t, tc.wantTok, tok)
			require.Equal(t, tc.wantSrc, src)

			ptok, psrc := PublisherToken(r)
			if tc.wantSrc == SourceHeader {
				require.Equal(t, tc.wantTok, ptok)
				require.Equal(t, SourceHeader, psrc)
			} else {
				require.Equal(t, SourceNone, psrc, "publishers read the header only")
				require.Empty(t, ptok)
			}
		})
	}
}

// FuzzSubscriberToken checks the extraction order and that a token comes
// verbatim from the place it names, on any header, cookie and query.
func FuzzSubscriberToken(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "cookie-token", "access_token=q")
	f.Add("Basic Zm9vOmJhcg==", "c", "a=1&access_token=q")
	f.Add("", "", "access%5Ftoken=q;x=1")
	f.Add("bearer\t x", "", "access_token=%ZZ&access_token=ok")
	f.Add("Bearer", "", "")
	f.Fuzz(func(t *testing.T, header, cookie, rawQuery string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{Path: "/events", RawQuery: rawQuery}}
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if cookie != "" {
			r.Header.Set("Cookie", "streamer_token="+cookie)
		}
		tok, src := SubscriberToken(r, "streamer_token")
		ptok, psrc := PublisherToken(r)

		_, isBearer := bearer(r.Header)
		c, cerr := r.Cookie("streamer_token")
		hasCookie := cerr == nil && c.Value != ""
		switch src {
		case SourceHeader:
			if !isBearer || ptok != tok || psrc != SourceHeader {
				t.Fatalf("header source without a bearer header, or publisher disagrees")
			}
			if !strings.Contains(header, tok) || tok != strings.Trim(tok, " \t") {
				t.Fatalf("header token %q not taken verbatim from %q", tok, header)
			}
		case SourceCookie:
			if isBearer || !hasCookie || tok != c.Value {
				t.Fatalf("cookie source out of order or not the cookie's value")
			}
		case SourceQuery:
			if isBearer || hasCookie || tok == "" {
				t.Fatalf("query source out of order")
			}
			found := false
			for _, v := range r.URL.Query()[QueryParam] {
				found = found || v == tok
			}
			if !found {
				t.Fatalf("query token %q is no access_token value", tok)
			}
		case SourceNone:
			if isBearer || hasCookie || tok != "" || len(nonEmpty(r.URL.Query()[QueryParam])) > 0 {
				t.Fatalf("a token was there but none returned")
			}
		default:
			t.Fatalf("unknown source %q", src)
		}
		if psrc != SourceNone && psrc != SourceHeader {
			t.Fatalf("publisher token from %q", psrc)
		}

		// Whatever the query, its redacted form holds no access_token
		// value but REDACTED, so a token read from it cannot be logged.
		red, err := url.ParseQuery(RedactQuery(rawQuery))
		_ = err // pairs that do not parse are dropped, as SubscriberToken drops them
		for _, v := range red[QueryParam] {
			if v != Redacted {
				t.Fatalf("RedactQuery(%q) kept access_token=%q", rawQuery, v)
			}
		}
	})
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
