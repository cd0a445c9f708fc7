package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
)

const tokenTestSecret = "0123456789abcdef0123456789abcdef"

// TestTokenCommand mints tokens with streamer token and checks them with
// the Authorizer the server uses, configured from the same variables.
func TestTokenCommand(t *testing.T) {
	t.Setenv("STREAMER_JWT_SECRET", tokenTestSecret)
	t.Setenv("STREAMER_JWT_ISSUER", "dev")
	t.Setenv("STREAMER_JWT_AUDIENCE", "streamer")

	mint := func(t *testing.T, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(append([]string{"token"}, args...), &out, &errOut), errOut.String())
		tok := strings.TrimSuffix(out.String(), "\n")
		require.NotContains(t, tok, "\n", "one token, one line")
		return tok
	}

	var af authFlags
	s := newSettings("test", &bytes.Buffer{})
	af.bind(s)
	require.NoError(t, s.parse(nil, ""))
	a, err := af.authorizer(false, zerolog.Nop())
	require.NoError(t, err)

	tok := mint(t, "--sub", "alice", "--subscribe", "orders:*, user:{sub}", "--publish", "orders:*", "--audience", "team:7,team:8", "--ttl", "10m")
	req := httptest.NewRequest("GET", "/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	p, aerr := a.Subscriber(req, []string{"orders:1", "user:alice"})
	require.Nil(t, aerr)
	require.Equal(t, "alice", p.Subject)
	require.Equal(t, []string{"alice", "team:7", "team:8"}, p.Audience)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), p.Expiry, 5*time.Second)
	_, aerr = a.Publisher(req, []string{"orders:1"})
	require.Nil(t, aerr)
	_, aerr = a.Publisher(req, []string{"user:alice"})
	require.NotNil(t, aerr)
	require.Equal(t, auth.ReasonForbidden, aerr.Reason)

	t.Run("claims and algorithm", func(t *testing.T) {
		tok := mint(t, "--alg", "HS512", "--ttl", "0")
		var c auth.Claims
		parsed, err := jwt.NewParser().ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return []byte(tokenTestSecret), nil })
		require.NoError(t, err)
		require.Equal(t, "HS512", parsed.Method.Alg())
		require.Nil(t, c.ExpiresAt, "ttl 0: no exp")
		require.Equal(t, "dev", c.Issuer)
		require.Equal(t, jwt.ClaimStrings{"streamer"}, c.Audience)
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--jwt-secret", ""}, "STREAMER_JWT_SECRET (or --jwt-secret) is required"},
			{[]string{"--alg", "RS256"}, "algorithm"},
			{[]string{"--ttl", "-1s"}, "negative ttl"},
			{[]string{"extra"}, "unexpected arguments"},
		} {
			var out, errOut bytes.Buffer
			require.Equal(t, 1, run(append([]string{"token"}, tc.args...), &out, &errOut))
			require.Contains(t, errOut.String(), tc.want)
			require.Empty(t, out.String())
			require.NotContains(t, errOut.String(), tokenTestSecret)
		}
	})

	t.Run("help", func(t *testing.T) {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run([]string{"token", "--help"}, &out, &errOut))
		for _, want := range []string{"--jwt-secret", "STREAMER_JWT_SECRET", "--sub", "--subscribe", "--publish", "--audience", "--ttl", "1h", "--alg"} {
			require.Contains(t, out.String(), want)
		}
		require.NotContains(t, out.String(), tokenTestSecret, "help shows defaults, not the secret")
	})
}

func TestAuthFlags(t *testing.T) {
	t.Setenv("STREAMER_JWT_SECRET", tokenTestSecret)
	t.Setenv("STREAMER_PUBLIC_STREAMS", "news,public:*")
	t.Setenv("STREAMER_MAX_CONNECTIONS_PER_IP", "nope")
	t.Setenv("STREAMER_TRUSTED_PROXIES", "10.0.0.0/8")
	t.Setenv("STREAMER_CORS_ORIGINS", "https://app.example.com")

	var help bytes.Buffer
	var af authFlags
	s := newSettings("streamer serve", &help)
	af.bind(s)
	require.ErrorContains(t, s.parse(nil, ""), "STREAMER_MAX_CONNECTIONS_PER_IP", "a bad value is reported")

	af = authFlags{}
	s = newSettings("streamer serve", &help)
	af.bind(s)
	require.NoError(t, s.parse([]string{"--max-connections-per-ip", "3", "--auth-cookie", "sess"}, ""), "a flag overrides a bad env value")
	require.Equal(t, authFlags{
		JWTSecret:           tokenTestSecret,
		PublicStreams:       "news,public:*",
		AuthCookie:          "sess",
		CORSOrigins:         "https://app.example.com",
		TrustedProxies:      "10.0.0.0/8",
		MaxConnectionsPerIP: 3,
	}, af)

	s.usage(&help, "")
	for _, o := range []option{optJWTSecret, optJWTKeyFile, optJWTJWKSURL, optJWTIssuer, optJWTAudience, optPublicStreams, optAuthCookie, optCORSOrigins, optTrustedProxies, optMaxConnsPerIP} {
		require.Contains(t, help.String(), "--"+o.flag)
		require.Contains(t, help.String(), o.env)
	}
	require.Contains(t, help.String(), "env STREAMER_JWT_SECRET, default (none)")
	require.Contains(t, help.String(), "env STREAMER_AUTH_COOKIE, default streamer_token")
	require.NotContains(t, help.String(), tokenTestSecret)

	a, err := af.authorizer(false, zerolog.Nop())
	require.NoError(t, err)
	require.True(t, a.Enabled())
	_, aerr := a.Subscriber(httptest.NewRequest("GET", "/events", nil), []string{"news"})
	require.Nil(t, aerr, "public streams come from the variable")
	c, err := af.cors()
	require.NoError(t, err)
	require.NotNil(t, c)
	res, lim, err := af.clientAddr()
	require.NoError(t, err)
	require.NotNil(t, res)
	require.NotNil(t, lim)

	bad := af
	bad.TrustedProxies = "10.0.0.0/99"
	_, _, err = bad.clientAddr()
	require.ErrorContains(t, err, "STREAMER_TRUSTED_PROXIES")
	bad = af
	bad.CORSOrigins = "app.example.com"
	_, err = bad.cors()
	require.ErrorContains(t, err, "STREAMER_CORS_ORIGINS")
	bad = af
	bad.JWTPublicKeyFile = filepath.Join(t.TempDir(), "missing.pem")
	_, err = bad.authorizer(false, zerolog.Nop())
	require.ErrorIs(t, err, os.ErrNotExist)

	// An Authorizer without JWKS starts and stops like every service.
	require.NoError(t, a.Start(context.Background()))
	a.Stop()
}

// TestServeAuthorization runs serve with a secret, public streams, CORS and
// a per-address limit of one, and checks that each piece is wired: tokens
// from `streamer token` open private streams, refusals are counted in
// /metrics, CORS answers the listed origin only, and the limit holds.
func TestServeAuthorization(t *testing.T) {
	t.Parallel()
	base := startServe(t, "--jwt-secret", tokenTestSecret, "--public-streams", "news:*",
		"--cors-origins", "https://app.example", "--max-connections-per-ip", "1")
	tok, err := auth.Mint([]byte(tokenTestSecret), auth.MintOptions{Subject: "alice", Subscribe: []string{"user:{sub}"}, TTL: time.Hour})
	require.NoError(t, err)
	get := func(t *testing.T, method, path string, hdr ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	before := scrapeMetrics(t, base)

	resp := get(t, "GET", "/events?stream=user:alice")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
	resp = get(t, "POST", "/publish", "Content-Type", "application/json")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp = get(t, "OPTIONS", "/events", "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))

	held := get(t, "GET", "/events?stream=user:alice", "Authorization", "Bearer "+tok, "Origin", "https://evil.example")
	require.Equal(t, http.StatusOK, held.StatusCode)
	require.Empty(t, held.Header.Get("Access-Control-Allow-Origin"))
	resp = get(t, "GET", "/events?stream=news:1")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	after := scrapeMetrics(t, base)
	require.Equal(t, float64(2), after.value("streamer_auth_failures_total")-before.value("streamer_auth_failures_total"))
	require.Equal(t, float64(1), after.value("streamer_connections_refused_total", "reason", "per_ip")-
		before.value("streamer_connections_refused_total", "reason", "per_ip"))
}
