package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
)

// The authenticated fan-out scenarios (issue #11): fanout-auth and
// fanout-fast-auth are fanout and fanout-fast with every client holding a
// token of its own and every second event restricted to half of them. The
// report puts each beside the unauthenticated one it is compared with.
//
// Every streamer server the tool starts has an HMAC secret, so that the
// unauthenticated scenarios run on the same configuration; their streams
// are public, and need no token.

// publicStreams is STREAMER_PUBLIC_STREAMS of every streamer server: the
// streams of every scenario but the authenticated ones.
const publicStreams = "idle,fanout,fast,live,replay,slow,s.*"

// authScenarios maps each authenticated scenario to the unauthenticated
// one it is compared with (report.go: the auth/anon row).
var authScenarios = map[string]string{"fanout-auth": "fanout", "fanout-fast-auth": "fanout-fast"}

// restrictedAudience is the audience of every second event of the
// authenticated scenarios: user:3 and team:1, which the clients with an odd
// index have (clientClaims): half of them.
var restrictedAudience = []string{"user:3", "team:1"}

// restrictedKey is the sequence key of the restricted events of stream, in
// their data (see pacer.restrict).
func restrictedKey(stream string) string { return stream + ":restricted" }

// restrictEveryOther restricts the events of odd index to
// restrictedAudience.
func restrictEveryOther(stream string) func(int64) (string, []string) {
	key := restrictedKey(stream)
	return func(i int64) (string, []string) {
		if i%2 == 1 {
			return key, restrictedAudience
		}
		return "", nil
	}
}

// newSecret returns a random HMAC secret, as text (an environment value).
func newSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return hex.AppendEncode(nil, b), nil
}

// clientClaims are the claims of client i's token: sub user:<i>, allowed
// to subscribe to stream, with audience values team:<i%2> and org:1.
func clientClaims(i int, stream string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": fmt.Sprintf("user:%d", i),
		"exp": exp.Unix(),
		"streamer": map[string]any{
			"subscribe": []string{stream},
			"audience":  []string{fmt.Sprintf("team:%d", i%2), "org:1"},
		},
	}
}

// sees reports whether a connection with claims may see an event for
// audience: when its sub or one of its audience values is in it.
func sees(claims jwt.MapClaims, audience []string) bool {
	if slices.Contains(audience, claims["sub"].(string)) {
		return true
	}
	for _, a := range claims["streamer"].(map[string]any)["audience"].([]string) {
		if slices.Contains(audience, a) {
			return true
		}
	}
	return false
}

// authGroups returns n clients of stream, each with its own token signed
// with secret, in two groups: those that may see the restricted events
// (and expect their key) and those that may not (and count them as
// leaked if they come).
func authGroups(secret []byte, stream string, n int, exp time.Time) ([]client.ConnGroup, error) {
	key := restrictedKey(stream)
	see := client.ConnGroup{Stream: stream, Keys: []string{key}}
	hide := client.ConnGroup{Stream: stream, Hidden: []string{key}}
	for i := range n {
		claims := clientClaims(i, stream, exp)
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			return nil, fmt.Errorf("sign client %d's token: %w", i, err)
		}
		g := &hide
		if sees(claims, restrictedAudience) {
			g = &see
		}
		g.Tokens = append(g.Tokens, token)
		g.Count++
	}
	return []client.ConnGroup{see, hide}, nil
}

// fanoutAuth runs an authenticated fan-out: conns clients of stream, each
// with its own token, at rate events/s, every second event visible to half
// of them. Each client must get exactly the events it may see.
func (b *bench) fanoutAuth(ctx context.Context, label, kind, stream string, conns int, rate float64) (result, error) {
	// The tokens outlive the run: none expires while it is measured.
	groups, err := authGroups(b.jwtSecret, stream, conns, time.Now().Add(b.cfg.Timeout+time.Hour))
	if err != nil {
		return result{}, err
	}
	s, err := b.begin(ctx, label, kind)
	if err != nil {
		return result{}, err
	}
	defer s.end()
	if err := needsToken(ctx, s.t.addr, stream); err != nil {
		return result{}, err
	}
	return b.deliverRestricted(ctx, s, groups, rate, oneStream(stream), restrictEveryOther(stream))
}

// needsToken checks that the server refuses a subscriber of stream without
// a token: otherwise the scenario would measure an unauthenticated server.
func needsToken(ctx context.Context, addr, stream string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/events?stream="+stream, nil)
	if err != nil {
		return err
	}
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("subscribe to %s without a token: %w", stream, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("subscribe to %s without a token: %s, want 401 Unauthorized (a server without authorization?)", stream, resp.Status)
	}
	return nil
}
