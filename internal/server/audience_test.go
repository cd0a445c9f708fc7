package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Acceptance (#11, audience): users A and B (B in team:7) and an anonymous
// subscriber on one public stream; events for A, for B, for team:7 and for
// everyone, published concurrently. Through the real server, with real
// tokens: each connection receives exactly what its token may see, live,
// and again when it resumes from every id it received.
func TestEventsAudience(t *testing.T) {
	t.Parallel()
	a := authSetup(t)
	alice := good()
	alice.subscribe = []string{"news:*"}
	bob := good()
	bob.sub, bob.subscribe, bob.audience = "bob", []string{"news:*"}, []string{"team:7"}
	tokens := map[string]string{"alice": a.token(t, alice), "bob": a.token(t, bob), "anon": ""}

	connect := func(who, lastID string) *client {
		h := http.Header{}
		if tok := tokens[who]; tok != "" {
			h.Set("Authorization", "Bearer "+tok)
		}
		if lastID != "" {
			h.Set("Last-Event-ID", lastID)
		}
		c, resp := dialHeader(t, http.DefaultClient, a.url, url.Values{"stream": {"news:1"}}, h)
		require.Equal(t, http.StatusOK, resp.StatusCode, who)
		return c
	}
	clients := map[string]*client{"alice": connect("alice", ""), "bob": connect("bob", ""), "anon": connect("anon", "")}
	a.waitLive(t, len(clients))

	// Four publishers, one per audience, interleaving their commits.
	audiences := map[string][]string{"a": {"alice"}, "b": {"bob"}, "t": {"team:7"}, "all": nil}
	const each = 25
	var wg sync.WaitGroup
	for name, aud := range audiences {
		wg.Go(func() {
			for i := range each {
				_, err := a.pool.Exec(context.Background(),
					"SELECT streamer.publish('news:1', $1, audience => $2)", fmt.Sprintf("%s-%d", name, i), aud)
				if err != nil {
					t.Errorf("publish %s-%d: %v", name, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// What each may see, in the database's delivery order.
	a.sequence(t)
	may := map[string]func(aud []string) bool{
		"alice": func(aud []string) bool { return aud == nil || contains(aud, "alice") },
		"bob":   func(aud []string) bool { return aud == nil || contains(aud, "bob") || contains(aud, "team:7") },
		"anon":  func(aud []string) bool { return aud == nil },
	}
	rows, err := a.pool.Query(context.Background(), `
		SELECT e.data, e.audience FROM streamer.events e JOIN streamer.commits c USING (txid)
		ORDER BY c.seq, e.id`)
	require.NoError(t, err)
	want := map[string][]string{}
	for rows.Next() {
		var data string
		var aud []string
		require.NoError(t, rows.Scan(&data, &aud))
		for who, ok := range may {
			if ok(aud) {
				want[who] = append(want[who], data)
			}
		}
	}
	require.NoError(t, rows.Err())
	require.Len(t, want["anon"], each)
	require.Len(t, want["alice"], 2*each)
	require.Len(t, want["bob"], 3*each)

	for who, c := range clients {
		got := c.take(len(want[who]))
		require.Equal(t, want[who], datas(got), "%s live", who)
		// Resume from every id received: exactly the rest, nothing hidden.
		for i, ev := range got {
			r := connect(who, ev.ID)
			rest := want[who][i+1:]
			require.Equal(t, rest, datas(r.take(len(rest))), "%s resuming after event %d", who, i)
			r.close()
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
