package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestGap is the acceptance scenario of issue #12 for gaps, against the
// real server: 100 events, then 100 more, the first 100 pruned with
// streamer.prune. Clients resuming from before the horizon get exactly one
// streamer.gap first, then events 101..200 once each, then live events; a
// client resuming at the horizon gets the same events and no gap; a live
// subscriber connected throughout gets everything and no gap.
func TestGap(t *testing.T) {
	t.Parallel()
	bin := buildServer(t, t.TempDir())
	d := deploy(t, bin)

	live := follow(t, "live", []string{d.url}, []string{"s"}, "")
	d.publish(t, "s", "", "w") // the live subscriber is subscribed once it has this
	waitFor(t, longWait, "the live subscriber", func() bool { return live.count() == 1 })

	before := d.head(t)
	tokens := make([]string, 201) // tokens[i]: event i
	for i := 1; i <= 200; i++ {
		tokens[i] = d.token(t, d.publish(t, "s", "", strconv.Itoa(i)))
		if i == 100 {
			waitFor(t, longWait, "the first batch live", func() bool { return live.count() == 101 })
		}
	}
	waitFor(t, longWait, "the second batch live", func() bool { return live.count() == 201 })

	// Prune the first batch (and the warm-up event): backdate its commits.
	pruneThrough(t, d, "100", 101)

	cases := []struct {
		name string
		from string
		gap  bool
	}{
		{"t50", tokens[50], true},
		{"t100", tokens[100], false},
		{"head before the first batch", before, true},
	}
	followers := make([]*follower, len(cases))
	for i, tc := range cases {
		followers[i] = follow(t, tc.name, []string{d.url}, []string{"s"}, tc.from)
	}
	for _, f := range followers {
		waitFor(t, longWait, "the replay of "+f.name, func() bool { return f.count() == 100 })
	}
	d.publish(t, "s", "", "201")
	d.publish(t, "s", "", "202")

	want := make([]string, 0, 102)
	for i := 101; i <= 202; i++ {
		want = append(want, strconv.Itoa(i))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := followers[i]
			waitFor(t, longWait, "live events", func() bool { return f.count() == len(want) })
			require.Equal(t, want, f.data(), f.String())
			require.Len(t, f.connections(), 1, f.String())
			requireOrdered(t, f.ids())
			evs := f.all()
			if !tc.gap {
				require.Zero(t, f.typed("streamer.gap"), f.String())
				return
			}
			require.Equal(t, 1, f.typed("streamer.gap"), f.String())
			require.Equal(t, "streamer.gap", evs[0].Type, "the gap comes first")
			require.Equal(t, tc.from, evs[0].ID, "the gap frame does not move Last-Event-ID")
			var gap struct{ Reason, Oldest string }
			require.NoError(t, json.Unmarshal([]byte(evs[0].Data), &gap))
			require.Equal(t, "retention", gap.Reason)
			require.Equal(t, tokens[100], gap.Oldest)
		})
	}
	t.Run("live throughout", func(t *testing.T) {
		waitFor(t, longWait, "live events", func() bool { return live.count() == 203 })
		require.Equal(t, append([]string{"w"}, slices.Concat(seq(1, 100), want)...), live.data())
		require.Zero(t, live.typed("streamer.gap"))
		require.Len(t, live.connections(), 1, live.String())
	})
}

// pruneThrough backdates the commits up to the one of the event whose
// data is data, prunes, and requires want events to have been removed.
func pruneThrough(t *testing.T, d *deployment, data string, want int64) {
	t.Helper()
	ctx := context.Background()
	_, err := d.pool.Exec(ctx, `UPDATE streamer.commits SET committed_at = committed_at - interval '1 day'
		WHERE seq <= (SELECT c.seq FROM streamer.commits c JOIN streamer.events e ON e.txid = c.txid WHERE e.data = $1)`, data)
	require.NoError(t, err)
	var pruned int64
	require.NoError(t, d.pool.QueryRow(ctx, `SELECT streamer.prune(interval '1 hour')`).Scan(&pruned))
	require.Equal(t, want, pruned)
}

// seq returns the decimal numbers from..to.
func seq(from, to int) []string {
	out := make([]string, 0, to-from+1)
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// token returns the resume token of the event with id.
func (d *deployment) token(t testing.TB, id int64) string {
	t.Helper()
	pgtest.Tick(t, d.pool)
	var s int64
	require.NoError(t, d.pool.QueryRow(context.Background(), `
		SELECT c.seq FROM streamer.commits c JOIN streamer.events e ON e.txid = c.txid WHERE e.id = $1`, id).Scan(&s))
	return fmt.Sprintf("%d.%d", s, id)
}

// all returns every event received, server events included, in order.
func (f *follower) all() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// TestGapBrowser: /streamer.js gives the gap to onGap, with its info, before
// the retained events, and the inspector shows it as a row of its own.
func TestGapBrowser(t *testing.T) {
	t.Parallel()
	bin := buildServer(t, t.TempDir())
	d := deploy(t, bin)
	tb := newTab(t, newBrowser(t))

	tokens := make([]string, 9)
	for i := 1; i <= 8; i++ {
		tokens[i] = d.token(t, d.publish(t, "s", "", strconv.Itoa(i)))
	}
	pruneThrough(t, d, "5", 5)

	tb.do(chromedp.Navigate(d.url + "/?stream=s&last_event_id=" + tokens[2]))
	tb.waitRows(3, shortWait)
	rows := tb.rows()
	require.Len(t, rows, 4, "%+v", rows)
	require.True(t, rows[0].Server, "%+v", rows[0])
	require.Equal(t, "streamer.gap", rows[0].Type)
	require.Contains(t, rows[0].Data, "pruned by retention")
	require.Contains(t, rows[0].Data, "Nothing after "+tokens[5]+" is missing")
	for i, r := range rows[1:] {
		require.False(t, r.Server)
		require.Equal(t, strconv.Itoa(6+i), r.Data)
		require.Equal(t, tokens[6+i], r.ID)
	}
	require.Equal(t, 1, eval[int](tb, `document.querySelectorAll("#events > tr.server.gap").length`))

	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`
		window.got = [];
		window.gaps = [];
		import("/streamer.js").then((m) => {
			window.sub = m.subscribe({
				streams: ["s"],
				lastEventId: %q,
				onEvent: (ev) => got.push(ev.data),
				onGap: (ev) => gaps.push({info: ev.info, before: got.length}),
			});
		})`, tokens[2])))
	tb.waitJS(shortWait, "the retained events", `got.length >= 3`)
	require.Equal(t, []string{"6", "7", "8"}, eval[[]string](tb, `got`))
	type gapSeen struct {
		Info   map[string]string `json:"info"`
		Before int               `json:"before"`
	}
	require.Equal(t, []gapSeen{{Info: map[string]string{"reason": "retention", "oldest": tokens[5]}, Before: 0}},
		eval[[]gapSeen](tb, `gaps`))
	require.Equal(t, tokens[8], eval[string](tb, `sub.lastEventId`))
	tb.requireNoCSPViolations()
}
