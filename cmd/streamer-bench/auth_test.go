package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
)

// TestAuthGroups: every client has its own token, valid for the server's
// secret, and is in the group that expects the restricted events exactly
// when its claims let it see them (the server's rule, checked here with
// internal/auth's verifier).
func TestAuthGroups(t *testing.T) {
	t.Parallel()
	secret := []byte("bench-secret-for-tests-0123456789")
	exp := time.Now().Add(time.Hour)
	groups, err := authGroups(secret, "fanout-auth", 7, exp)
	require.NoError(t, err)
	require.Len(t, groups, 2)
	see, hide := groups[0], groups[1]
	require.Equal(t, []string{"fanout-auth:restricted"}, see.Keys)
	require.Empty(t, see.Hidden)
	require.Equal(t, []string{"fanout-auth:restricted"}, hide.Hidden)
	require.Empty(t, hide.Keys)
	require.Equal(t, 3, see.Count, "clients 1, 3, 5")
	require.Equal(t, 4, hide.Count, "clients 0, 2, 4, 6")

	public, err := auth.ParsePatterns(publicStreams)
	require.NoError(t, err)
	a, err := auth.New(auth.Config{Secret: secret, Cookie: "streamer_token", PublicStreams: public})
	require.NoError(t, err)
	subscribe := func(stream, tok string) (auth.Principal, *auth.Error) {
		r := httptest.NewRequest(http.MethodGet, "/events?stream="+stream, nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return a.Subscriber(r, []string{stream})
	}
	for _, s := range []string{"idle", "fanout", "fast", "live", "replay", "slow", "s.0", "s.9999"} {
		_, aerr := subscribe(s, "")
		require.Nil(t, aerr, "%s is public: the unauthenticated scenarios need no token", s)
	}
	for _, s := range []string{"fanout-auth", "fast-auth"} {
		_, aerr := subscribe(s, "")
		require.NotNil(t, aerr, "%s needs a token", s)
	}
	seen := map[string]bool{}
	for _, g := range groups {
		require.Len(t, g.Tokens, g.Count)
		for _, tok := range g.Tokens {
			p, aerr := subscribe("fanout-auth", tok)
			require.Nil(t, aerr)
			require.False(t, seen[p.Subject], "one token per client")
			seen[p.Subject] = true
			var i int
			_, err = fmt.Sscanf(p.Subject, "user:%d", &i)
			require.NoError(t, err)
			require.Equal(t, []string{p.Subject, fmt.Sprintf("team:%d", i%2), "org:1"}, p.Audience)
			require.Equal(t, exp.Unix(), p.Expiry.Unix())
			sees := false
			for _, k := range p.Audience {
				sees = sees || k == "user:3" || k == "team:1"
			}
			require.Equal(t, sees, g.Keys != nil, "client %d in the right group", i)
		}
	}
	require.Len(t, seen, 7)
}

func TestSees(t *testing.T) {
	t.Parallel()
	claims := func(sub string, aud ...string) jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "streamer": map[string]any{"audience": aud}}
	}
	require.True(t, sees(claims("user:3", "team:0"), restrictedAudience), "by sub")
	require.True(t, sees(claims("user:5", "team:1"), restrictedAudience), "by audience value")
	require.False(t, sees(claims("user:4", "team:0", "org:1"), restrictedAudience))
}

func TestRestrictEveryOther(t *testing.T) {
	t.Parallel()
	r := restrictEveryOther("s")
	k, a := r(0)
	require.Empty(t, k)
	require.Nil(t, a)
	k, a = r(1)
	require.Equal(t, "s:restricted", k)
	require.Equal(t, restrictedAudience, a)
}

// audienceRecorder keeps every event's data and audience.
type audienceRecorder struct {
	recordingPublisher
	audience []*string
}

func (p *audienceRecorder) publishAudience(ctx context.Context, streams, data []string, audience []*string) error {
	p.audience = append(p.audience, audience...)
	return p.publish(ctx, streams, data)
}

// TestPacerRestrict: with restrict, every second event carries the audience
// and is numbered under its own key; the others have none and are numbered
// under the stream; the expected counts are per key.
func TestPacerRestrict(t *testing.T) {
	t.Parallel()
	pub := &audienceRecorder{}
	p := newPacer(pub, 100, 40, oneStream("s"))
	p.restrict = restrictEveryOther("s")
	require.NoError(t, p.publishN(context.Background(), 5, 2))
	var keys []string
	for i, d := range pub.data {
		f := strings.Fields(d)
		keys = append(keys, f[0]+" "+f[1])
		if i%2 == 1 {
			require.NotNil(t, pub.audience[i])
			require.Equal(t, "user:3,team:1", *pub.audience[i])
		} else {
			require.Nil(t, pub.audience[i])
		}
	}
	require.Equal(t, []string{"s 1", "s:restricted 1", "s 2", "s:restricted 2", "s 3"}, keys)
	require.Equal(t, map[string]int64{"s": 3, "s:restricted": 2}, p.expected())

	// A publisher that cannot publish an audience is refused, not ignored.
	q := newPacer(&recordingPublisher{}, 100, 40, oneStream("s"))
	q.restrict = restrictEveryOther("s")
	require.ErrorContains(t, q.publishN(context.Background(), 2, 2), "cannot publish with an audience")
}
