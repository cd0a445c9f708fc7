package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/clientaddr"
	"github.com/streamer-dev/streamer/internal/cors"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/syncbuf"
)

// authKeys is an RSA key pair whose public half the server trusts, and a
// second pair it does not know.
type authKeys struct {
	priv, other *rsa.PrivateKey
	pubPEM      []byte
	file        string
}

func newAuthKeys(t *testing.T) authKeys {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	require.NoError(t, err)
	k := authKeys{priv: priv, other: other, pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	k.file = filepath.Join(t.TempDir(), "pub.pem")
	require.NoError(t, os.WriteFile(k.file, k.pubPEM, 0o600))
	return k
}

const (
	testIssuer   = "https://issuer.example"
	testAudience = "streamer-test"
)

// claims are a token's claims; zero times are left out.
type claims struct {
	sub       string
	subscribe []string
	iss, aud  string
	exp, nbf  time.Time
	audience  []string // streamer.audience
}

func (c claims) jwt() auth.Claims {
	out := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: c.sub, Issuer: c.iss},
		Streamer:         auth.StreamerClaims{Subscribe: c.subscribe, Audience: c.audience},
	}
	if c.aud != "" {
		out.Audience = jwt.ClaimStrings{c.aud}
	}
	if !c.exp.IsZero() {
		out.ExpiresAt = jwt.NewNumericDate(c.exp)
	}
	if !c.nbf.IsZero() {
		out.NotBefore = jwt.NewNumericDate(c.nbf)
	}
	return out
}

// good are the claims of a valid token for alice.
func good() claims {
	return claims{sub: "alice", subscribe: []string{"user:{sub}", "orders:*"}, iss: testIssuer, aud: testAudience,
		exp: time.Now().Add(time.Hour)}
}

func sign(t *testing.T, key any, method jwt.SigningMethod, c claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c.jwt()).SignedString(key)
	require.NoError(t, err)
	return s
}

// refusalCounters counts what the server reports.
type refusalCounters struct {
	auth    atomic.Int64
	mu      sync.Mutex
	refused map[string]int
}

func (c *refusalCounters) AuthFailed() { c.auth.Add(1) }
func (c *refusalCounters) ConnectionRefused(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == nil {
		c.refused = map[string]int{}
	}
	c.refused[reason]++
}
func (c *refusalCounters) count(reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[reason]
}

// authStack is the whole server with an Authorizer trusting keys' RSA
// key, issuer and audience checked, "news:*" public; its log is captured.
type authStack struct {
	*stack
	keys     authKeys
	counters *refusalCounters
	log      *syncbuf.Buffer
}

func authSetup(t *testing.T, opts ...func(*stackOpts)) *authStack {
	t.Helper()
	keys := newAuthKeys(t)
	public, err := auth.ParsePatterns("news:*")
	require.NoError(t, err)
	authz, err := auth.New(auth.Config{PublicKeyFile: keys.file, Issuer: testIssuer, Audience: testAudience, PublicStreams: public})
	require.NoError(t, err)
	require.NoError(t, authz.Start(context.Background()))
	t.Cleanup(authz.Stop)
	a := &authStack{keys: keys, counters: &refusalCounters{}, log: &syncbuf.Buffer{}}
	a.stack = setup(t, append([]func(*stackOpts){func(o *stackOpts) {
		o.server.Auth = authz
		o.server.Counters = a.counters
		o.logOut = a.log
	}}, opts...)...)
	return a
}

func (a *authStack) token(t *testing.T, c claims) string {
	t.Helper()
	return sign(t, a.keys.priv, jwt.SigningMethodRS256, c)
}

// refusal is a refused request as the client sees it.
type refusal struct {
	status int
	www    string
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Stream string `json:"stream"`
}

func readRefusal(t *testing.T, resp *http.Response) refusal {
	t.Helper()
	r := refusal{status: resp.StatusCode, www: resp.Header.Get("WWW-Authenticate")}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	return r
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// Acceptance: every refusal through the real GET /events, with its status,
// WWW-Authenticate and JSON reason; nothing reaches the dispatcher.
func TestEventsRefusals(t *testing.T) {
	t.Parallel()
	a := authSetup(t)
	now := time.Now()
	tokenFor := func(f func(*claims)) string {
		c := good()
		f(&c)
		return a.token(t, c)
	}
	const invalid = `Bearer error="invalid_token"`
	tests := []struct {
		name    string
		streams []string
		header  http.Header
		status  int
		www     string
		reason  auth.Reason
		stream  string
	}{
		{"NoToken", []string{"user:alice"}, nil, 401, "Bearer", auth.ReasonNoToken, "user:alice"},
		{"Malformed", []string{"user:alice"}, bearer("not.a-token"), 401, invalid, auth.ReasonMalformed, ""},
		{"WrongSignature", []string{"user:alice"}, bearer(sign(t, a.keys.other, jwt.SigningMethodRS256, good())), 401, invalid, auth.ReasonSignature, ""},
		{"AlgNone", []string{"user:alice"}, bearer(sign(t, jwt.UnsafeAllowNoneSignatureType, jwt.SigningMethodNone, good())), 401, invalid, auth.ReasonAlgorithm, ""},
		// The classic: HS256 "signed" with the server's public key.
		{"AlgorithmConfusion", []string{"user:alice"}, bearer(sign(t, a.keys.pubPEM, jwt.SigningMethodHS256, good())), 401, invalid, auth.ReasonAlgorithm, ""},
		{"Expired", []string{"user:alice"}, bearer(tokenFor(func(c *claims) { c.exp = now.Add(-time.Minute) })), 401, invalid, auth.ReasonExpired, ""},
		{"NotYetValid", []string{"user:alice"}, bearer(tokenFor(func(c *claims) { c.nbf = now.Add(time.Minute) })), 401, invalid, auth.ReasonNotYetValid, ""},
		{"WrongIssuer", []string{"user:alice"}, bearer(tokenFor(func(c *claims) { c.iss = "https://evil.example" })), 401, invalid, auth.ReasonIssuer, ""},
		{"WrongAudience", []string{"user:alice"}, bearer(tokenFor(func(c *claims) { c.aud = "someone-else" })), 401, invalid, auth.ReasonAudience, ""},
		{"OneOfTwoStreamsNotAllowed", []string{"user:alice", "user:bob"}, bearer(a.token(t, good())), 403, `Bearer error="insufficient_scope"`, auth.ReasonForbidden, "user:bob"},
		{"PublicWithPrivateNoToken", []string{"news:1", "user:alice"}, nil, 401, "Bearer", auth.ReasonNoToken, "user:alice"},
		// A token that is offered must be valid, even for a public stream.
		{"PublicWithBadToken", []string{"news:1"}, bearer("not.a-token"), 401, invalid, auth.ReasonMalformed, ""},
		{"BadTokenInQuery", []string{"user:alice"}, nil, 401, invalid, auth.ReasonSignature, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"stream": tt.streams}
			if tt.name == "BadTokenInQuery" {
				q.Set("access_token", sign(t, a.keys.other, jwt.SigningMethodRS256, good()))
			}
			before, failures := a.subscribes.Load(), a.counters.auth.Load()
			_, resp := dialHeader(t, http.DefaultClient, a.url, q, tt.header)
			r := readRefusal(t, resp)
			require.Equal(t, tt.status, r.status, r.Error)
			require.Equal(t, tt.www, r.www)
			require.Equal(t, string(tt.reason), r.Reason)
			require.Equal(t, tt.stream, r.Stream)
			require.NotEmpty(t, r.Error)
			require.Equal(t, before, a.subscribes.Load(), "a refused request reached the dispatcher")
			require.Equal(t, failures+1, a.counters.auth.Load(), "refusal not counted")
		})
	}
	require.Zero(t, a.reg.Len())
	require.Zero(t, a.srv.OpenStreams())
}

// Acceptance: a token is accepted from the header, the cookie and the query,
// and public streams mix with private ones.
func TestEventsAcceptedForms(t *testing.T) {
	t.Parallel()
	a := authSetup(t)
	tok := a.token(t, good())
	forms := []struct {
		name   string
		query  url.Values
		header http.Header
	}{
		{"Header", nil, bearer(tok)},
		{"Cookie", nil, http.Header{"Cookie": {auth.DefaultCookie + "=" + tok}}},
		{"Query", url.Values{"access_token": {tok}}, nil},
	}
	var clients []*client
	for _, f := range forms {
		q := url.Values{"stream": {"user:alice", "news:1"}}
		for k, v := range f.query {
			q[k] = v
		}
		c, resp := dialHeader(t, http.DefaultClient, a.url, q, f.header)
		require.Equal(t, http.StatusOK, resp.StatusCode, f.name)
		clients = append(clients, c)
	}
	anon := subscribe(t, a.url, []string{"news:1", "news:2"}, "")
	a.waitLive(t, len(clients)+1)

	a.publish(t, "user:alice", "private")
	a.publish(t, "news:1", "public")
	for i, c := range clients {
		require.Equal(t, []string{"private", "public"}, datas(c.take(2)), forms[i].name)
	}
	require.Equal(t, "public", anon.next().Data)
}

// Acceptance: a connection whose token expires gets streamer.reauth and is
// closed within a second after exp plus the leeway, not before; resuming
// with a fresh token and the last id misses nothing and repeats nothing.
// The tokens never reach the server's log.
func TestEventsTokenExpiry(t *testing.T) {
	t.Parallel()
	for _, noHijack := range []bool{false, true} {
		name := "Hijacked"
		if noHijack {
			name = "HandlerWritten" // as HTTP/2 streams are
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testTokenExpiry(t, noHijack)
		})
	}
}

func testTokenExpiry(t *testing.T, noHijack bool) {
	a := authSetup(t, func(o *stackOpts) { o.server.NoHijack = noHijack })
	// exp has whole seconds: 2 to 3 s from now.
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second)
	c0 := good()
	c0.exp = exp
	short := a.token(t, c0)
	c := subscribeQuery(t, a.url, url.Values{"stream": {"orders:1"}, "access_token": {short}}, "")
	a.waitLive(t, 1)

	var sent []string
	for i := range 3 {
		sent = append(sent, strconv.Itoa(i))
		a.publish(t, "orders:1", sent[i])
	}
	got := c.ended()
	endedAt := time.Now()
	require.NotEmpty(t, got)
	last := got[len(got)-1]
	require.Equal(t, "streamer.reauth", last.Event)
	require.JSONEq(t, `{"reason":"token expired"}`, last.Data)
	closeAt := exp.Add(auth.Leeway)
	require.False(t, endedAt.Before(closeAt), "closed %v before exp+leeway", closeAt.Sub(endedAt))
	require.WithinDuration(t, closeAt, endedAt, time.Second, "closed more than a second after exp+leeway")
	t.Logf("closed %v after exp+leeway", endedAt.Sub(closeAt))
	require.Equal(t, sent, datas(got[:len(got)-1]))
	lastID := got[len(got)-2].ID

	// Published while the client has no connection.
	for i := 3; i < 6; i++ {
		sent = append(sent, strconv.Itoa(i))
		a.publish(t, "orders:1", sent[i])
	}
	fresh := a.token(t, good())
	c2, resp := dialHeader(t, http.DefaultClient, a.url, url.Values{"stream": {"orders:1"}},
		http.Header{"Authorization": {"Bearer " + fresh}, "Last-Event-ID": {lastID}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, sent[3:], datas(c2.take(3)))
	a.waitLive(t, 1)
	a.publish(t, "orders:1", "live")
	require.Equal(t, "live", c2.next().Data)

	// Refused requests are logged (with the redacted URL), and no token
	// appears anywhere in the log.
	_, resp = dial(t, a.url, url.Values{"stream": {"user:bob"}, "access_token": {fresh}}, "")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	log := a.log.String()
	require.Contains(t, log, "refused: not authorized")
	require.Contains(t, log, "access_token="+auth.Redacted)
	require.Contains(t, log, "token expired: closing with streamer.reauth")
	for _, tok := range []string{short, fresh} {
		require.NotContains(t, log, tok)
		sig := tok[len(tok)-20:] // a part of the signature alone must not leak either
		require.NotContains(t, log, sig)
	}
}

// Acceptance: the per-address limit answers 429 with Retry-After, holds a
// hijacked stream's slot until the stream ends, and believes
// X-Forwarded-For only from trusted proxies. CORS: a listed origin's
// preflight is answered, an unlisted origin gets no Access-Control-Allow-*.
func TestEventsPerAddressAndCORS(t *testing.T) {
	t.Parallel()
	// 127.0.0.2 is the trusted proxy; clients dial from 127.0.0.1.
	res, err := clientaddr.NewResolver([]string{"127.0.0.2/32"})
	require.NoError(t, err)
	lim := clientaddr.NewLimiter(1, 0, res.Addr)
	c, err := cors.New(cors.Config{Origins: []string{"https://app.example"}, Paths: []string{"/events", "/publish"}})
	require.NoError(t, err)
	a := authSetup(t, func(o *stackOpts) {
		o.server.Middleware = append(o.server.Middleware, res.Middleware, c.Handler)
		o.server.PerAddress = lim
	})
	viaProxy := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	t.Cleanup(viaProxy.CloseIdleConnections)
	xff := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	news := url.Values{"stream": {"news:1"}}

	t.Run("TrustedProxy", func(t *testing.T) {
		held, resp := dialHeader(t, viaProxy, a.url, news, xff("198.51.100.7, 127.0.0.2"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, resp = dialHeader(t, viaProxy, a.url, news, xff("198.51.100.7"))
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "5", resp.Header.Get("Retry-After"))
		require.Equal(t, 1, a.counters.count(metrics.RefusedPerIP))
		// Another client behind the same proxy has its own count.
		other, resp := dialHeader(t, viaProxy, a.url, news, xff("198.51.100.8"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		other.close()
		held.close()
		// The slot is released once the server noticed the client left.
		require.Eventually(t, func() bool {
			return lim.Count(netip.MustParseAddr("198.51.100.7")) == 0
		}, 15*time.Second, 10*time.Millisecond)
		c, resp := dialHeader(t, viaProxy, a.url, news, xff("198.51.100.7"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		c.close()
	})

	t.Run("UntrustedPeer", func(t *testing.T) {
		// From 127.0.0.1 the header is ignored: both are 127.0.0.1.
		held, resp := dialHeader(t, http.DefaultClient, a.url, news, xff("198.51.100.9"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, resp = dialHeader(t, http.DefaultClient, a.url, news, xff("198.51.100.10"))
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		held.close()
	})

	t.Run("CORS", func(t *testing.T) {
		n := 0
		do := func(method, origin string, extra ...string) *http.Response {
			req, err := http.NewRequest(method, a.url+"/events?stream=news:2", nil)
			require.NoError(t, err)
			req.Header.Set("Origin", origin)
			for i := 0; i+1 < len(extra); i += 2 {
				req.Header.Set(extra[i], extra[i+1])
			}
			// From another proxy client address each time: the limit is
			// not what this subtest is about.
			n++
			req.Header.Set("X-Forwarded-For", "192.0.2."+strconv.Itoa(n))
			resp, err := viaProxy.Do(req)
			require.NoError(t, err)
			return resp
		}
		resp := do(http.MethodOptions, "https://app.example", "Access-Control-Request-Method", "GET")
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))

		resp = do(http.MethodOptions, "https://evil.example", "Access-Control-Request-Method", "GET")
		resp.Body.Close()
		requireNoCORS(t, resp.Header)

		resp = do(http.MethodGet, "https://evil.example")
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		requireNoCORS(t, resp.Header)
	})
}

func requireNoCORS(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		require.NotRegexp(t, `(?i)^access-control-allow-`, k)
	}
}
