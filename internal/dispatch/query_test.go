package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestReadPlan checks the read path with EXPLAIN on a table large enough
// for the planner to prefer indexes: a range scan of commits from the
// cursor, joined to events by txid, never a scan of all events.
func TestReadPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	// 20,000 single-event transactions, half of them for one of 100 users.
	pgtest.WriteHistory(t, pool, pgtest.History{Commits: 20000})
	_, err := pool.Exec(ctx, `
		UPDATE streamer.events SET audience = ARRAY['user:' || (id % 100)] WHERE id % 2 = 0;
		ANALYZE streamer.events`)
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		query string
		args  []any
	}{
		{"all streams, far behind", readQuery, []any{int64(100), int64(0), 500}},
		{"all streams, live", readQuery, []any{int64(19990), int64(0), 500}},
		{"some streams, far behind", readStreamsQuery, []any{int64(100), int64(0), 500, []string{"s1", "s2"}}},
		{"replay, all streams, far behind", replayQuery, []any{int64(100), int64(0), 500, []string{"user:1"}}},
		{"replay, some streams, anonymous", replayStreamsQuery, []any{int64(100), int64(0), 500, []string{"s1", "s2"}, []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := explain(t, pool, "EXPLAIN "+tc.query, tc.args...)
			t.Log(text)
			require.Contains(t, text, "commits_pkey", text)
			require.Contains(t, text, "events_txid_id_idx", text)
			require.NotContains(t, text, "Seq Scan on events", text)
			// Ordered by commit already: the sort stops at the page limit
			// instead of sorting every event of the page's commits.
			require.Contains(t, text, "Presorted Key", text)
		})
	}
}

// explain runs an EXPLAIN statement and returns its plan as text.
func explain(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, statement string, args ...any) string {
	t.Helper()
	rows, err := q.Query(context.Background(), statement, args...)
	require.NoError(t, err)
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	return strings.Join(plan, "\n")
}

func TestReadPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)

	head, err := readHead(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, cursor.After(0), head)

	// Three transactions; the second has three events.
	_, err = pool.Exec(ctx, "SELECT streamer.publish('a', '1')")
	require.NoError(t, err)
	pgtest.Tick(t, pool)
	_, err = pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('a', '2'), ('b', '3'), ('a', '4')")
	require.NoError(t, err)
	pgtest.Tick(t, pool)
	_, err = pool.Exec(ctx, "SELECT streamer.publish('b', '5', event => 't')")
	require.NoError(t, err)
	pgtest.Tick(t, pool)

	t.Run("pages until caught up", func(t *testing.T) {
		t.Parallel()
		var got []string
		pos := cursor.Start
		for {
			p, err := readPage(ctx, pool, pos, nil, 2, nil)
			require.NoError(t, err)
			for _, ev := range p.events {
				got = append(got, ev.data)
			}
			pos = p.next
			if !p.full {
				break
			}
		}
		require.Equal(t, []string{"1", "2", "3", "4", "5"}, got)
		require.Equal(t, cursor.After(3), pos)
	})

	t.Run("filters streams and keeps the type", func(t *testing.T) {
		t.Parallel()
		p, err := readPage(ctx, pool, cursor.Start, []string{"b"}, 10, nil)
		require.NoError(t, err)
		require.Len(t, p.events, 2)
		require.Equal(t, "3", p.events[0].data)
		require.Equal(t, "", p.events[0].typ)
		require.Equal(t, "t", p.events[1].typ)
		require.Equal(t, cursor.After(3), p.next)
	})

	t.Run("resumes inside a transaction", func(t *testing.T) {
		t.Parallel()
		first, err := readPage(ctx, pool, cursor.After(1), nil, 1, nil)
		require.NoError(t, err)
		require.True(t, first.full)
		rest, err := readPage(ctx, pool, first.next, nil, 10, nil)
		require.NoError(t, err)
		require.Equal(t, "3", rest.events[0].data)
		require.Len(t, rest.events, 3)
	})

	t.Run("a cursor past the head stays put", func(t *testing.T) {
		t.Parallel()
		p, err := readPage(ctx, pool, cursor.After(99), nil, 10, nil)
		require.NoError(t, err)
		require.Empty(t, p.events)
		require.Equal(t, cursor.After(99), p.next)
	})
}

// TestReadPageAudience: a replay read decides visibility in SQL; a hidden
// row comes back as its position alone, never its type or data.
func TestReadPageAudience(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(ctx, `INSERT INTO streamer.events (stream, event, data, audience) VALUES
		('s', 't', 'all', NULL), ('s', 't', 'for a', '{a}'), ('s', 't', 'for b and c', '{b,c}')`)
	require.NoError(t, err)
	pgtest.Tick(t, pool)
	type row struct {
		typ, data string
		hidden    bool
	}
	for _, tc := range []struct {
		keys []string
		want []row
	}{
		{nil, []row{{"t", "all", false}, {"", "", true}, {"", "", true}}},
		{[]string{"a"}, []row{{"t", "all", false}, {"t", "for a", false}, {"", "", true}}},
		{[]string{"x", "c"}, []row{{"t", "all", false}, {"", "", true}, {"t", "for b and c", false}}},
	} {
		p, err := readPage(ctx, pool, cursor.Start, []string{"s"}, 10, newAudience(tc.keys))
		require.NoError(t, err)
		var got []row
		for _, ev := range p.events {
			require.Nil(t, ev.audience)
			got = append(got, row{ev.typ, ev.data, ev.hidden})
		}
		require.Equal(t, tc.want, got, "keys %q", tc.keys)
	}
}

// TestReadPlanAfterPrune: planning a live read does not depend on how many
// events were pruned since the last vacuum. Pruning leaves the deleted
// events' entries at the start of events_pkey until a vacuum; a plain
// "e.id > 0" would make the planner look up the lowest live id there,
// stepping over all of them at every read.
func TestReadPlanAfterPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	const n = 100_000
	_, err := pool.Exec(ctx, `
		ALTER TABLE streamer.events SET (autovacuum_enabled = false);
		ALTER TABLE streamer.commits SET (autovacuum_enabled = false)`)
	require.NoError(t, err)
	pgtest.WriteHistory(t, pool, pgtest.History{Commits: n, Age: 24 * time.Hour})
	_, err = pool.Exec(ctx, "SELECT streamer.prune_step(now() - interval '1 hour', $1)", n-100)
	require.NoError(t, err)

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	planBuffers := func() int {
		// The read as the dispatcher plans it: a custom plan for its
		// arguments, the live cursor and id 0.
		text := explain(t, conn, "EXPLAIN (BUFFERS) "+readStreamsQuery, int64(n-10), int64(0), 500, []string{"s1"})
		_, after, ok := strings.Cut(text, "Planning:")
		if !ok {
			return 0 // no buffer was read
		}
		var hit int
		_, err = fmt.Sscanf(strings.TrimSpace(after), "Buffers: shared hit=%d", &hit)
		require.NoError(t, err, text)
		return hit
	}
	planBuffers() // the first plan also reads the catalogue
	got := planBuffers()
	// ~270 index pages hold the pruned entries; the rest of planning needs
	// a handful.
	require.Less(t, got, 50, "planning read %d buffers", got)
}
