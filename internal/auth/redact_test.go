package auth

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"stream=a&stream=b", "stream=a&stream=b"},
		{"stream=a&access_token=SECRET", "stream=a&access_token=REDACTED"},
		{"access_token=SECRET&access_token=SECRET2", "access_token=REDACTED&access_token=REDACTED"},
		{"access%5Ftoken=SECRET", "access%5Ftoken=REDACTED"},
		{"access_token=", "access_token=REDACTED"},
		{"x=1;access_token=SECRET", "REDACTED"},
		{"ACCESS_TOKEN=SECRET&a=b", "REDACTED&a=b"},
		{"a=%zzSECRET&b=c", "REDACTED&b=c"},
		{"last_event_id=1.2&stream=x", "last_event_id=1.2&stream=x"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, RedactQuery(tc.in))
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://user:pw@example.com/events?stream=a&access_token=SECRET#frag")
	require.NoError(t, err)
	require.Equal(t, "https://user:REDACTED@example.com/events?stream=a&access_token=REDACTED#frag", RedactURL(u))
	require.Equal(t, "https://user:pw@example.com/events?stream=a&access_token=SECRET#frag", u.String(), "u is not modified")
	require.Equal(t, "", RedactURL(nil))

	r := httptest.NewRequest("GET", "/events?stream=a&access_token=SECRET", nil)
	require.Equal(t, "/events?stream=a&access_token=REDACTED", RedactRequestURI(r))
	require.Equal(t, Redacted, redactString("http://[::1"))
}

// TestTokenNeverLogged logs every refusal the way doc.go tells the server
// to, plus JWKS errors, and checks that no token reaches the output.
func TestTokenNeverLogged(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := zerolog.New(&out)
	clk := newClock()
	now := clk.Now()
	a := newAuthorizer(t, Config{Secret: testSecret, Issuer: "iss", Audience: "aud", Now: clk.Now, Logger: log})

	mk := func(mod func(*Claims)) string {
		c := claims(now, "alice", "orders:*")
		c.Issuer, c.Audience = "iss", jwt.ClaimStrings{"aud"}
		mod(&c)
		return sign(t, jwt.SigningMethodHS256, testSecret, c)
	}
	tokens := []string{
		"not-a-jwt-but-secret",
		sign(t, jwt.SigningMethodHS256, []byte("wrong secret wrong secret wrong!!"), claims(now, "alice")),
		sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(now, "alice")),
		mk(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }),
		mk(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }),
		mk(func(c *Claims) { c.Issuer = "other" }),
		mk(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		mk(func(c *Claims) {}), // valid: refused for the stream (403)
	}
	for _, tok := range tokens {
		for _, place := range []func(string) func(*http.Request){
			withHeader, withQuery, func(tok string) func(*http.Request) { return withCookie(DefaultCookie, tok) },
		} {
			r := newRequest("GET", place(tok))
			_, aerr := a.Subscriber(r, []string{"payments:1"})
			require.NotNil(t, aerr)
			rec := httptest.NewRecorder()
			WriteError(rec, aerr)
			log.Info().Err(aerr).Str("reason", string(aerr.Reason)).Str("url", RedactRequestURI(r)).Msg("refused")
			log.Info().Msg(rec.Body.String())
		}
	}
	require.NotEmpty(t, out.String())
	for _, tok := range tokens {
		require.NotContains(t, out.String(), tok)
		// Nor its signature or payload, the parts that make it usable.
		for _, part := range strings.Split(tok, ".")[1:] {
			if len(part) >= 8 {
				require.NotContains(t, out.String(), part)
			}
		}
	}
}
