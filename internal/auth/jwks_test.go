package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
)

// jwksServer serves a JWKS that a test can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if code := int(s.status.Load()); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	s.serve(t)
	return s
}

// serve replaces the JWKS with the given kid, key pairs.
func (s *jwksServer) serve(t *testing.T, kidKeys ...any) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for i := 0; i+1 < len(kidKeys); i += 2 {
		jwk, err := jwkset.NewJWKFromKey(kidKeys[i+1], jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kidKeys[i].(string)}})
		require.NoError(t, err)
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	if set.Keys == nil {
		set.Keys = []jwkset.JWKMarshal{}
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	s.body.Store(&b)
}

func startAuthorizer(t *testing.T, cfg Config) *Authorizer {
	t.Helper()
	a := newAuthorizer(t, cfg)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(a.Stop)
	return a
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	k := keys()

	subscribe := func(t *testing.T, a *Authorizer, tok string) *Error {
		t.Helper()
		_, aerr := a.Subscriber(newRequest("GET", withHeader(tok)), []string{"orders:1"})
		return aerr
	}
	// reasonOf is the refusal's reason, "" when accepted, so that an
	// unexpected acceptance fails the test rather than panicking it.
	reasonOf := func(aerr *Error) Reason {
		if aerr == nil {
			return ""
		}
		return aerr.Reason
	}
	// startK1 starts an authorizer on a JWKS server that serves one RSA
	// key, kid "k1", with a clock the test moves; cfg adds to that.
	startK1 := func(t *testing.T, cfg Config) (*jwksServer, *clock, *Authorizer) {
		t.Helper()
		srv := newJWKSServer(t)
		srv.serve(t, "k1", crypto.PublicKey(&k.rsa.PublicKey))
		clk := newClock()
		cfg.JWKSURL, cfg.Now = srv.URL, clk.Now
		return srv, clk, startAuthorizer(t, cfg)
	}

	t.Run("every key type, by kid and without", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t)
		srv.serve(t, "rsa", crypto.PublicKey(&k.rsa.PublicKey), "p256", crypto.PublicKey(&k.p256.PublicKey),
			"p384", crypto.PublicKey(&k.p384.PublicKey), "p521", crypto.PublicKey(&k.p521.PublicKey), "ed", k.ed.Public())
		clk := newClock()
		a := startAuthorizer(t, Config{JWKSURL: srv.URL, Now: clk.Now})
		for _, tc := range []struct {
			method jwt.SigningMethod
			key    any
			kid    string
		}{
			{jwt.SigningMethodRS256, k.rsa, "rsa"},
			{jwt.SigningMethodPS512, k.rsa, "rsa"},
			{jwt.SigningMethodES256, k.p256, "p256"},
			{jwt.SigningMethodES384, k.p384, "p384"},
			{jwt.SigningMethodES512, k.p521, "p521"},
			{jwt.SigningMethodEdDSA, k.ed, "ed"},
			{jwt.SigningMethodES256, k.p256, ""},
		} {
			hdr := []string{}
			if tc.kid != "" {
				hdr = []string{"kid", tc.kid}
			}
			tok := sign(t, tc.method, tc.key, claims(clk.Now(), "alice", "orders:*"), hdr...)
			require.Nil(t, subscribe(t, a, tok), "%s kid %q", tc.method.Alg(), tc.kid)
		}

		// The kid names an RSA key; an HS256 token keyed with that key's
		// public bytes is refused by algorithm (no secret configured).
		confused := sign(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), claims(clk.Now(), "alice", "orders:*"), "kid", "rsa")
		require.Equal(t, ReasonAlgorithm, reasonOf(subscribe(t, a, confused)))
		// An ES256 token whose kid names the P-384 key does not fit it.
		mismatched := sign(t, jwt.SigningMethodES256, k.p256, claims(clk.Now(), "alice", "orders:*"), "kid", "p384")
		require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, mismatched)))
		// A right kid with the wrong key is a bad signature.
		forged := sign(t, jwt.SigningMethodRS256, k.rsa2, claims(clk.Now(), "alice", "orders:*"), "kid", "rsa")
		require.Equal(t, ReasonSignature, reasonOf(subscribe(t, a, forged)))
	})

	t.Run("rotation: a new kid is picked up without restart", func(t *testing.T) {
		t.Parallel()
		srv, clk, a := startK1(t, Config{})
		require.EqualValues(t, 1, srv.fetches.Load(), "fetched at start")

		tok1 := sign(t, jwt.SigningMethodRS256, k.rsa, claims(clk.Now(), "alice", "orders:*"), "kid", "k1")
		require.Nil(t, subscribe(t, a, tok1))
		require.EqualValues(t, 1, srv.fetches.Load(), "a known kid needs no fetch")

		srv.serve(t, "k1", crypto.PublicKey(&k.rsa.PublicKey), "k2", crypto.PublicKey(&k.p256.PublicKey))
		tok2 := sign(t, jwt.SigningMethodES256, k.p256, claims(clk.Now(), "alice", "orders:*"), "kid", "k2")
		require.Nil(t, subscribe(t, a, tok2))
		require.EqualValues(t, 2, srv.fetches.Load(), "the unknown kid was refetched")
	})

	t.Run("unknown kid refetch at most once every 10 s", func(t *testing.T) {
		t.Parallel()
		srv, clk, a := startK1(t, Config{})
		unknown := sign(t, jwt.SigningMethodRS256, k.rsa, claims(clk.Now(), "alice", "orders:*"), "kid", "nope")

		require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, unknown)))
		require.EqualValues(t, 2, srv.fetches.Load())
		clk.Advance(JWKSUnknownKIDInterval - time.Millisecond)
		for range 5 {
			require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, unknown)))
		}
		require.EqualValues(t, 2, srv.fetches.Load(), "rate limited")

		// A rotation within the interval is seen once the interval is over.
		srv.serve(t, "k1", crypto.PublicKey(&k.rsa.PublicKey), "nope", crypto.PublicKey(&k.rsa.PublicKey))
		require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, unknown)))
		clk.Advance(time.Millisecond)
		require.Nil(t, subscribe(t, a, unknown))
		require.EqualValues(t, 3, srv.fetches.Load())
	})

	t.Run("concurrent requests for a new kid share one refetch", func(t *testing.T) {
		t.Parallel()
		srv, clk, a := startK1(t, Config{})
		srv.serve(t, "k1", crypto.PublicKey(&k.rsa.PublicKey), "k2", crypto.PublicKey(&k.p256.PublicKey))
		tok2 := sign(t, jwt.SigningMethodES256, k.p256, claims(clk.Now(), "alice", "orders:*"), "kid", "k2")
		var wg sync.WaitGroup
		errs := make(chan *Error, 16)
		for range 16 {
			wg.Go(func() {
				_, aerr := a.Subscriber(newRequest("GET", withHeader(tok2)), []string{"orders:1"})
				errs <- aerr
			})
		}
		wg.Wait()
		close(errs)
		for aerr := range errs {
			require.Nil(t, aerr, "a request that lost the race reads the keys the winner fetched")
		}
		require.EqualValues(t, 2, srv.fetches.Load(), "one fetch at start, one for k2")
	})

	t.Run("periodic refresh", func(t *testing.T) {
		t.Parallel()
		signals := &TestSignals{}
		signals.Init()
		// clk is never advanced: after one unknown-kid refetch, no other.
		srv, clk, a := startK1(t, Config{JWKSRefreshInterval: 10 * time.Millisecond, TestSignals: signals})
		refreshes := 0
		// waitRefreshedAfter waits for the periodic refresh that fetched
		// first after the server's count was n (the first fetch, at Start,
		// sends no signal), and returns its result.
		waitRefreshedAfter := func(n int64) error {
			for {
				err := signals.JWKSRefreshed.WaitOrTimeout(t)
				refreshes++
				if int64(refreshes)+1 > n {
					return err
				}
			}
		}

		tok1 := sign(t, jwt.SigningMethodRS256, k.rsa, claims(clk.Now(), "alice", "orders:*"), "kid", "k1")
		require.Nil(t, subscribe(t, a, tok1))
		// Use up the unknown-kid refetch, so that only the periodic
		// refresh can bring new keys from here on.
		unknown := sign(t, jwt.SigningMethodRS256, k.rsa, claims(clk.Now(), "alice", "orders:*"), "kid", "nope")
		require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, unknown)))

		// Rotation: k1 revoked, k2 added.
		srv.serve(t, "k2", crypto.PublicKey(&k.p256.PublicKey))
		tok2 := sign(t, jwt.SigningMethodES256, k.p256, claims(clk.Now(), "alice", "orders:*"), "kid", "k2")
		// The clock stands still, so the unknown-kid refetch stays rate
		// limited: only the periodic refresh can bring k2.
		require.NoError(t, waitRefreshedAfter(srv.fetches.Load()))
		require.Nil(t, subscribe(t, a, tok2), "the refresh brought k2")
		require.Equal(t, ReasonUnknownKey, reasonOf(subscribe(t, a, tok1)), "and dropped k1")

		// A failed refresh keeps the keys it had.
		srv.status.Store(http.StatusInternalServerError)
		require.Error(t, waitRefreshedAfter(srv.fetches.Load()))
		require.Nil(t, subscribe(t, a, tok2))
	})

	t.Run("a failed first fetch fails Start", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t)
		srv.status.Store(http.StatusNotFound)
		a := newAuthorizer(t, Config{JWKSURL: srv.URL})
		err := a.Start(context.Background())
		require.ErrorContains(t, err, "first jwks fetch")
		a.Stop()
	})

	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t)
		srv.serve(t, "k1", crypto.PublicKey(&k.rsa.PublicKey))
		startstoptest.Stress(t, newAuthorizer(t, Config{JWKSURL: srv.URL, JWKSRefreshInterval: time.Millisecond}))
		startstoptest.Stress(t, newAuthorizer(t, Config{Secret: testSecret}))
	})
}
