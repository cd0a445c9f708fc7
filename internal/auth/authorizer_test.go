package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// refusal is what a client sees of a refused request.
type refusal struct {
	Status int
	WWW    string
	Body   body
}

func written(e *Error) refusal {
	rec := httptest.NewRecorder()
	WriteError(rec, e)
	var b body
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		panic(err)
	}
	return refusal{Status: rec.Code, WWW: rec.Header().Get("WWW-Authenticate"), Body: b}
}

const (
	wwwNone    = "Bearer"
	wwwInvalid = `Bearer error="invalid_token"`
	wwwScope   = `Bearer error="insufficient_scope"`
)

func TestSubscriberRefusals(t *testing.T) {
	t.Parallel()
	k := keys()
	clk := newClock()
	now := clk.Now()
	rsaPEM := pemOf(t, &k.rsa.PublicKey)

	// RSA only: the server holds the RSA public key and no secret.
	rsaOnly := newAuthorizer(t, Config{PublicKeyFile: writePEM(t, &k.rsa.PublicKey), Now: clk.Now})
	// RSA and a secret, with issuer and audience checks.
	full := newAuthorizer(t, Config{
		Secret:        testSecret,
		PublicKeyFile: writePEM(t, &k.rsa.PublicKey),
		Issuer:        "https://issuer.example",
		Audience:      "streamer",
		PublicStreams: mustPatterns(t, "news,public:*"),
		Now:           clk.Now,
	})
	good := func(mod func(*Claims)) Claims {
		c := claims(now, "alice", "orders:*")
		c.Issuer = "https://issuer.example"
		c.Audience = jwt.ClaimStrings{"streamer"}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good(nil))

	for _, tc := range []struct {
		name    string
		a       *Authorizer
		req     *http.Request
		streams []string
		reason  Reason
		status  int
		www     string
		stream  string
	}{
		{"no token", full, newRequest("GET"), []string{"orders:1"}, ReasonNoToken, 401, wwwNone, "orders:1"},
		{"no token, one stream public", full, newRequest("GET"), []string{"news", "orders:1"}, ReasonNoToken, 401, wwwNone, "orders:1"},
		{"other scheme is no token", full, newRequest("GET", func(r *http.Request) { r.Header.Set("Authorization", "Basic YTpi") }), []string{"orders:1"}, ReasonNoToken, 401, wwwNone, "orders:1"},
		{"malformed", full, newRequest("GET", withHeader("not-a-jwt")), []string{"orders:1"}, ReasonMalformed, 401, wwwInvalid, ""},
		{"malformed empty bearer", full, newRequest("GET", withHeader("")), []string{"orders:1"}, ReasonMalformed, 401, wwwInvalid, ""},
		{"malformed claim type", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"streamer": map[string]any{"subscribe": "orders:*"}}))), []string{"orders:1"}, ReasonMalformed, 401, wwwInvalid, ""},
		{"malformed token on a public stream", full, newRequest("GET", withQuery("x.y.z")), []string{"news"}, ReasonMalformed, 401, wwwInvalid, ""},
		{"wrong signature", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, []byte("another secret, another secret!!"), good(nil)))), []string{"orders:1"}, ReasonSignature, 401, wwwInvalid, ""},
		{"wrong RSA key", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodRS256, k.rsa2, good(nil)))), []string{"orders:1"}, ReasonSignature, 401, wwwInvalid, ""},
		{"alg none", full, newRequest("GET", withHeader(none)), []string{"orders:1"}, ReasonAlgorithm, 401, wwwInvalid, ""},
		{"alg none in cookie", full, newRequest("GET", withCookie(DefaultCookie, none)), []string{"news"}, ReasonAlgorithm, 401, wwwInvalid, ""},
		{"algorithm confusion: HS256 keyed with the RSA public key", rsaOnly, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, rsaPEM, good(nil)))), []string{"orders:1"}, ReasonAlgorithm, 401, wwwInvalid, ""},
		{"algorithm confusion with a secret configured", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, rsaPEM, good(nil)))), []string{"orders:1"}, ReasonSignature, 401, wwwInvalid, ""},
		{"algorithm without a key", rsaOnly, newRequest("GET", withHeader(sign(t, jwt.SigningMethodES256, k.p256, good(nil)))), []string{"orders:1"}, ReasonAlgorithm, 401, wwwInvalid, ""},
		{"expired", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-Leeway - time.Second)) })))), []string{"orders:1"}, ReasonExpired, 401, wwwInvalid, ""},
		{"nbf in the future", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(Leeway + time.Second)) })))), []string{"orders:1"}, ReasonNotYetValid, 401, wwwInvalid, ""},
		{"wrong issuer", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.Issuer = "https://evil.example" })))), []string{"orders:1"}, ReasonIssuer, 401, wwwInvalid, ""},
		{"missing issuer", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.Issuer = "" })))), []string{"orders:1"}, ReasonIssuer, 401, wwwInvalid, ""},
		{"wrong audience", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} })))), []string{"orders:1"}, ReasonAudience, 401, wwwInvalid, ""},
		{"missing audience", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.Audience = nil })))), []string{"orders:1"}, ReasonAudience, 401, wwwInvalid, ""},
		{"one of two streams not allowed", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(nil)))), []string{"orders:1", "payments:1"}, ReasonForbidden, 403, wwwScope, "payments:1"},
		{"publish pattern does not allow subscribing", full, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, good(func(c *Claims) { c.Streamer = StreamerClaims{Publish: []string{"*"}} })))), []string{"orders:1"}, ReasonForbidden, 403, wwwScope, "orders:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, aerr := tc.a.Subscriber(tc.req, tc.streams)
			require.NotNil(t, aerr, "accepted as %+v", p)
			require.Equal(t, Anonymous, p)
			require.Equal(t, tc.reason, aerr.Reason, aerr.Error())
			got := written(aerr)
			require.Equal(t, tc.status, got.Status)
			require.Equal(t, tc.www, got.WWW)
			require.Equal(t, tc.reason, got.Body.Reason)
			require.Equal(t, tc.stream, got.Body.Stream)
			require.NotEmpty(t, got.Body.Error)
			if tc.stream != "" {
				require.Contains(t, got.Body.Error, `"`+tc.stream+`"`, "the message names the stream")
			}
		})
	}
}

func mustPatterns(t testing.TB, list string) Patterns {
	t.Helper()
	ps, err := ParsePatterns(list)
	require.NoError(t, err)
	return ps
}

func TestSubscriberAccepts(t *testing.T) {
	t.Parallel()
	clk := newClock()
	now := clk.Now()
	a := newAuthorizer(t, Config{Secret: testSecret, PublicStreams: mustPatterns(t, "news"), Now: clk.Now})
	custom := newAuthorizer(t, Config{Secret: testSecret, Cookie: "sess", PublicStreams: mustPatterns(t, "news"), Now: clk.Now})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, claims(now, "alice", "orders:*"))
	bad := "bad.token.here"
	streams := []string{"orders:1", "news"}

	for _, tc := range []struct {
		name string
		a    *Authorizer
		req  *http.Request
	}{
		{"header", a, newRequest("GET", withHeader(tok))},
		{"header scheme in lower case", a, newRequest("GET", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) })},
		{"cookie", a, newRequest("GET", withCookie(DefaultCookie, tok))},
		{"configured cookie", custom, newRequest("GET", withCookie("sess", tok))},
		{"query", a, newRequest("GET", withQuery(tok))},
		{"header wins over a bad cookie and query", a, newRequest("GET", withHeader(tok), withCookie(DefaultCookie, bad), withQuery(bad))},
		{"cookie wins over a bad query", a, newRequest("GET", withCookie(DefaultCookie, tok), withQuery(bad))},
		{"a Basic header is skipped", a, newRequest("GET", func(r *http.Request) { r.Header.Set("Authorization", "Basic YTpi") }, withQuery(tok))},
		{"exp within the leeway", a, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, func() Claims {
			c := claims(now, "alice", "orders:*")
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-Leeway + time.Second))
			return c
		}())))},
		{"nbf within the leeway", a, newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, func() Claims {
			c := claims(now, "alice", "orders:*")
			c.NotBefore = jwt.NewNumericDate(now.Add(Leeway - time.Second))
			return c
		}())))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, aerr := tc.a.Subscriber(tc.req, streams)
			require.Nil(t, aerr)
			require.Equal(t, "alice", p.Subject)
			require.True(t, p.Token)
		})
	}

	t.Run("the first place holding a token decides", func(t *testing.T) {
		t.Parallel()
		for _, req := range []*http.Request{
			newRequest("GET", withHeader(bad), withCookie(DefaultCookie, tok)),
			newRequest("GET", withCookie(DefaultCookie, bad), withQuery(tok)),
		} {
			_, aerr := a.Subscriber(req, streams)
			require.NotNil(t, aerr)
			require.Equal(t, ReasonMalformed, aerr.Reason)
		}
	})

	t.Run("the default cookie is not read when another is configured", func(t *testing.T) {
		t.Parallel()
		_, aerr := custom.Subscriber(newRequest("GET", withCookie(DefaultCookie, tok)), streams)
		require.NotNil(t, aerr)
		require.Equal(t, ReasonNoToken, aerr.Reason)
	})
}

func TestSubscriberPrincipal(t *testing.T) {
	t.Parallel()
	clk := newClock()
	now := clk.Now()
	a := newAuthorizer(t, Config{Secret: testSecret, PublicStreams: mustPatterns(t, "news, public:*"), Now: clk.Now})

	t.Run("token", func(t *testing.T) {
		t.Parallel()
		c := claims(now, "alice", "orders:*")
		c.ID = "jti-1"
		c.Streamer.Audience = []string{"team:7", "alice", "", "team:7", "team:8"}
		p, aerr := a.Subscriber(newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, c))), []string{"orders:1", "news"})
		require.Nil(t, aerr)
		require.Equal(t, Principal{
			Subject:  "alice",
			ID:       "jti-1",
			Expiry:   now.Add(time.Hour).Truncate(time.Second),
			Audience: []string{"alice", "team:7", "team:8"},
			Token:    true,
		}, p)
		require.Equal(t, p.Expiry.Add(Leeway), p.CloseAt())
	})

	t.Run("token without sub or exp", func(t *testing.T) {
		t.Parallel()
		c := Claims{Streamer: StreamerClaims{Subscribe: []string{"orders:*"}, Audience: []string{"team:7"}}}
		p, aerr := a.Subscriber(newRequest("GET", withHeader(sign(t, jwt.SigningMethodHS256, testSecret, c))), []string{"orders:1"})
		require.Nil(t, aerr)
		require.Equal(t, Principal{Audience: []string{"team:7"}, Token: true}, p)
		require.True(t, p.CloseAt().IsZero())
	})

	t.Run("anonymous on public streams", func(t *testing.T) {
		t.Parallel()
		p, aerr := a.Subscriber(newRequest("GET"), []string{"news", "public:x"})
		require.Nil(t, aerr)
		require.Equal(t, Anonymous, p)
		require.Empty(t, p.Audience)
		require.True(t, p.CloseAt().IsZero())
	})
}

// TestSubscriberPatterns runs the contract's pattern cases through
// Subscriber, token and public patterns together.
func TestSubscriberPatterns(t *testing.T) {
	t.Parallel()
	clk := newClock()
	now := clk.Now()
	a := newAuthorizer(t, Config{Secret: testSecret, PublicStreams: mustPatterns(t, "news,public:*,pub:{sub}"), Now: clk.Now})
	tokenOf := func(sub string, subscribe ...string) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, claims(now, sub, subscribe...))
	}

	for _, tc := range []struct {
		name    string
		tok     string // "" for none
		streams []string
		refused string // the stream named in the refusal; "" when allowed
	}{
		{"orders:* allows orders:42", tokenOf("a", "orders:*"), []string{"orders:42"}, ""},
		{"orders:* allows orders:", tokenOf("a", "orders:*"), []string{"orders:"}, ""},
		{"orders:* refuses order:42", tokenOf("a", "orders:*"), []string{"order:42"}, "order:42"},
		{"orders:* refuses xorders:1", tokenOf("a", "orders:*"), []string{"xorders:1"}, "xorders:1"},
		{"user:{sub} allows the sub's stream", tokenOf("alice", "user:{sub}"), []string{"user:alice"}, ""},
		{"user:{sub} refuses another user's", tokenOf("alice", "user:{sub}"), []string{"user:bob"}, "user:bob"},
		{"user:{sub} refuses a prefix of the sub", tokenOf("alice", "user:{sub}"), []string{"user:alic"}, "user:alic"},
		{"a token without sub matches no {sub} pattern", tokenOf("", "user:{sub}"), []string{"user:"}, "user:"},
		{"a token without sub still matches others", tokenOf("", "user:{sub}", "orders:*"), []string{"orders:1"}, ""},
		{"{sub} and * together", tokenOf("alice", "user:{sub}:*"), []string{"user:alice:inbox"}, ""},
		{"public and private mixed, with a token", tokenOf("alice", "user:{sub}"), []string{"news", "user:alice", "public:x"}, ""},
		{"public and private mixed, private refused", tokenOf("alice", "user:{sub}"), []string{"news", "user:bob"}, "user:bob"},
		{"public and private mixed, no token", "", []string{"news", "user:alice"}, "user:alice"},
		{"public only, no token", "", []string{"news", "public:1"}, ""},
		{"public {sub} pattern is for nobody", tokenOf("alice"), []string{"pub:alice"}, "pub:alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest("GET")
			if tc.tok != "" {
				withHeader(tc.tok)(req)
			}
			_, aerr := a.Subscriber(req, tc.streams)
			if tc.refused == "" {
				require.Nil(t, aerr)
				return
			}
			require.NotNil(t, aerr)
			require.Equal(t, tc.refused, aerr.Stream)
			if tc.tok == "" {
				require.Equal(t, ReasonNoToken, aerr.Reason)
			} else {
				require.Equal(t, ReasonForbidden, aerr.Reason)
			}
		})
	}
}

func TestPublisher(t *testing.T) {
	t.Parallel()
	clk := newClock()
	now := clk.Now()
	a := newAuthorizer(t, Config{Secret: testSecret, Now: clk.Now})
	anon := newAuthorizer(t, Config{Secret: testSecret, AllowAnonymousPublish: true, Now: clk.Now})
	off := newAuthorizer(t, Config{Now: clk.Now})
	offAnon := newAuthorizer(t, Config{AllowAnonymousPublish: true, Now: clk.Now})
	c := claims(now, "svc", "orders:*")
	c.Streamer.Publish = []string{"orders:*", "user:{sub}"}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, c)

	for _, tc := range []struct {
		name    string
		a       *Authorizer
		req     *http.Request
		streams []string
		reason  Reason // "" when allowed
		stream  string
	}{
		{"header", a, newRequest("POST", withHeader(tok)), []string{"orders:1", "user:svc", "orders:2"}, "", ""},
		{"stream not in publish", a, newRequest("POST", withHeader(tok)), []string{"orders:1", "payments:1"}, ReasonForbidden, "payments:1"},
		{"no token", a, newRequest("POST"), []string{"orders:1"}, ReasonNoToken, ""},
		{"cookie is not read", a, newRequest("POST", withCookie(DefaultCookie, tok)), []string{"orders:1"}, ReasonNoToken, ""},
		{"query is not read", a, newRequest("POST", withQuery(tok)), []string{"orders:1"}, ReasonNoToken, ""},
		{"bad token", a, newRequest("POST", withHeader("x")), []string{"orders:1"}, ReasonMalformed, ""},
		{"anonymous publishing without token", anon, newRequest("POST"), []string{"payments:1"}, "", ""},
		{"anonymous publishing with a token, any stream", anon, newRequest("POST", withHeader(tok)), []string{"payments:1"}, "", ""},
		{"anonymous publishing still refuses a bad token", anon, newRequest("POST", withHeader("x")), []string{"payments:1"}, ReasonMalformed, ""},
		{"no keys, anonymous publishing off", off, newRequest("POST", withHeader(tok)), []string{"orders:1"}, ReasonNoToken, ""},
		{"no keys, anonymous publishing on", offAnon, newRequest("POST"), []string{"orders:1"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, aerr := tc.a.Publisher(tc.req, tc.streams)
			if tc.reason == "" {
				require.Nil(t, aerr)
				return
			}
			require.NotNil(t, aerr, "accepted as %+v", p)
			require.Equal(t, tc.reason, aerr.Reason)
			require.Equal(t, tc.stream, aerr.Stream)
		})
	}

	t.Run("grant before the body, streams after", func(t *testing.T) {
		t.Parallel()
		g, aerr := a.PublishGrant(newRequest("POST", withHeader(tok)))
		require.Nil(t, aerr)
		require.Equal(t, "svc", g.Principal.Subject)
		require.Nil(t, g.Allow([]string{"orders:1", "orders:1", "user:svc"}))
		aerr = g.Allow([]string{"orders:1", "user:other"})
		require.NotNil(t, aerr)
		require.Equal(t, "user:other", aerr.Stream)

		_, aerr = a.PublishGrant(newRequest("POST"))
		require.Equal(t, written(aerr).WWW, wwwNone)
		_, aerr = off.PublishGrant(newRequest("POST"))
		require.Contains(t, aerr.Message, "STREAMER_ALLOW_ANONYMOUS_PUBLISH")
	})
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, Config{})
	require.False(t, a.Enabled())
	for _, req := range []*http.Request{newRequest("GET"), newRequest("GET", withHeader("garbage"))} {
		p, aerr := a.Subscriber(req, []string{"orders:1", "user:bob"})
		require.Nil(t, aerr, "with no key every stream is public")
		require.Equal(t, Anonymous, p)
	}
}

func TestAlgorithmsFollowKeys(t *testing.T) {
	t.Parallel()
	k := keys()
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"secret", Config{Secret: testSecret}, []string{"HS256", "HS384", "HS512"}},
		{"rsa", Config{PublicKeyFile: writePEM(t, &k.rsa.PublicKey)}, []string{"PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}},
		{"p256 and ed25519", Config{PublicKeyFile: writePEM(t, &k.p256.PublicKey, k.ed.Public())}, []string{"ES256", "EdDSA"}},
		{"none", Config{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, newAuthorizer(t, tc.cfg).Algorithms())
		})
	}
}

// TestEveryAlgorithm accepts a token of every algorithm the contract
// names, the public keys all coming from one PEM file.
func TestEveryAlgorithm(t *testing.T) {
	t.Parallel()
	k := keys()
	clk := newClock()
	path := writePEM(t, &k.rsa.PublicKey, &k.p256.PublicKey, &k.p384.PublicKey, &k.p521.PublicKey, k.ed.Public())
	a := newAuthorizer(t, Config{Secret: testSecret, PublicKeyFile: path, Now: clk.Now})
	for _, tc := range []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodHS256, testSecret},
		{jwt.SigningMethodHS384, testSecret},
		{jwt.SigningMethodHS512, testSecret},
		{jwt.SigningMethodRS256, k.rsa},
		{jwt.SigningMethodRS384, k.rsa},
		{jwt.SigningMethodRS512, k.rsa},
		{jwt.SigningMethodPS256, k.rsa},
		{jwt.SigningMethodPS384, k.rsa},
		{jwt.SigningMethodPS512, k.rsa},
		{jwt.SigningMethodES256, k.p256},
		{jwt.SigningMethodES384, k.p384},
		{jwt.SigningMethodES512, k.p521},
		{jwt.SigningMethodEdDSA, k.ed},
	} {
		t.Run(tc.method.Alg(), func(t *testing.T) {
			t.Parallel()
			tok := sign(t, tc.method, tc.key, claims(clk.Now(), "alice", "orders:*"))
			p, aerr := a.Subscriber(newRequest("GET", withHeader(tok)), []string{"orders:1"})
			require.Nil(t, aerr)
			require.Equal(t, "alice", p.Subject)
		})
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteError(rec, forbiddenError("subscribing to", "orders:7"))
	require.Equal(t, 403, rec.Code)
	require.Equal(t, wwwScope, rec.Header().Get("WWW-Authenticate"))
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.JSONEq(t, `{"error":"insufficient scope: the token does not allow subscribing to stream \"orders:7\"","reason":"insufficient_scope","stream":"orders:7"}`, rec.Body.String())
}
