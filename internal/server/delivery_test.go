package server_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/migrations"
)

func TestLive(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := subscribe(t, s.url, []string{"live"}, "")
	s.waitLive(t, 1)

	const n = 1000
	for i := range n {
		s.publish(t, "live", strconv.Itoa(i))
	}
	got := c.take(n)
	requireOrdered(t, got)
	for i, ev := range got {
		require.Equal(t, strconv.Itoa(i), ev.Data)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := subscribe(t, s.url, []string{"r"}, "")
	s.waitLive(t, 1)
	for i := range 10 {
		s.publish(t, "r", strconv.Itoa(i))
	}
	first := c.take(10)
	c.close()

	for i := 10; i < 20; i++ {
		s.publish(t, "r", strconv.Itoa(i))
	}
	c2 := subscribe(t, s.url, []string{"r"}, first[9].ID)
	missed := c2.take(10)
	for i, ev := range missed {
		require.Equal(t, strconv.Itoa(10+i), ev.Data)
	}
	s.waitLive(t, 1)
	s.publish(t, "r", "live")
	require.Equal(t, "live", c2.next().Data)
	requireOrdered(t, append(first, append(missed, received{ID: c2.lastID})...))

	t.Run("last_event_id query parameter", func(t *testing.T) {
		c := subscribeQuery(t, s.url, url.Values{"stream": {"r"}, "last_event_id": {first[8].ID}}, "")
		require.Equal(t, "9", c.next().Data)
	})
	t.Run("header wins over query parameter", func(t *testing.T) {
		c := subscribeQuery(t, s.url, url.Values{"stream": {"r"}, "last_event_id": {first[0].ID}}, first[8].ID)
		require.Equal(t, "9", c.next().Data)
	})
}

func TestOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	c := subscribe(t, s.url, []string{"ooo"}, "")
	s.waitLive(t, 1)

	txA, err := s.pool.Begin(ctx)
	require.NoError(t, err)
	var idA int64
	require.NoError(t, txA.QueryRow(ctx, "SELECT streamer.publish('ooo', 'A')").Scan(&idA))
	idB := s.publish(t, "ooo", "B") // commits first, with the higher id
	require.Less(t, idA, idB)

	evB := c.next()
	require.Equal(t, "B", evB.Data)
	require.NoError(t, txA.Commit(ctx))
	evA := c.next()
	require.Equal(t, "A", evA.Data)
	requireOrdered(t, []received{evB, evA})

	// Whoever resumes from B's token (the id it was given while A was
	// open) still gets A, and nothing twice.
	r := subscribe(t, s.url, []string{"ooo"}, evB.ID)
	require.Equal(t, evA, r.next())
	r2 := subscribe(t, s.url, []string{"ooo"}, evA.ID)
	s.waitLive(t, 3)
	s.publish(t, "ooo", "C")
	require.Equal(t, "C", r2.next().Data)
	require.Equal(t, "C", r.next().Data)
	require.Equal(t, "C", c.next().Data)
}

func TestMultiStream(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := subscribe(t, s.url, []string{"a", "b"}, "")
	s.waitLive(t, 1)
	s.publish(t, "a", "a1")
	s.publish(t, "c", "c1")
	s.publish(t, "b", "b1")
	got := c.take(2)
	require.Equal(t, []string{"a1", "b1"}, datas(got))
	c.close()

	s.publish(t, "b", "b2")
	s.publish(t, "c", "c2")
	s.publish(t, "a", "a2")
	r := subscribe(t, s.url, []string{"a", "b"}, got[1].ID)
	require.Equal(t, []string{"b2", "a2"}, datas(r.take(2)))
}

func TestHead(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()

	s.publish(t, "h", "before")
	open, err := s.pool.Begin(ctx) // open while head() runs, commits after
	require.NoError(t, err)
	_, err = open.Exec(ctx, "SELECT streamer.publish('h', 'open-during-head')")
	require.NoError(t, err)

	var token string
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT streamer.head()").Scan(&token))
	_, err = cursor.Parse(token)
	require.NoError(t, err)

	s.publish(t, "h", "after")
	require.NoError(t, open.Commit(ctx))

	c := subscribeQuery(t, s.url, url.Values{"stream": {"h"}, "last_event_id": {token}}, "")
	got := c.take(2)
	if pgtest.Ordering() == migrations.Trigger {
		require.Equal(t, []string{"after", "open-during-head"}, datas(got))
	} else { // neither committed before the other began: either order
		require.ElementsMatch(t, []string{"after", "open-during-head"}, datas(got))
	}
}

func TestCheckConstraintsNameTheRule(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, sql, rule string
	}{
		{"bad stream", "INSERT INTO streamer.events (stream, data) VALUES ('-x', 'd')", "stream_name_rule"},
		{"long stream", fmt.Sprintf("INSERT INTO streamer.events (stream, data) VALUES ('%0201d', 'd')", 0), "stream_name_rule"},
		{"bad type", "INSERT INTO streamer.events (stream, event, data) VALUES ('x', 'a b', 'd')", "event_type_rule"},
		{"reserved type", "SELECT streamer.publish('x', 'd', event => 'streamer.gap')", "event_type_reserved_rule"},
		{"big data", "SELECT streamer.publish('x', repeat('x', 1048577))", "data_size_rule"},
		{"empty stream", "SELECT streamer.publish('', 'd')", "stream_name_rule"},
		{"stream starting with a symbol", "SELECT streamer.publish('_x', 'd')", "stream_name_rule"},
		{"non-ASCII stream", "SELECT streamer.publish('café', 'd')", "stream_name_rule"},
		{"stream with a newline", "SELECT streamer.publish(E'x\\n', 'd')", "stream_name_rule"},
		{"empty type", "INSERT INTO streamer.events (stream, event, data) VALUES ('x', '', 'd')", "event_type_rule"},
		{"long type", "SELECT streamer.publish('x', 'd', event => repeat('t', 65))", "event_type_rule"},
		{"non-ASCII type", "SELECT streamer.publish('x', 'd', event => 'é')", "event_type_rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.pool.Exec(ctx, tc.sql)
			require.ErrorContains(t, err, tc.rule)
		})
	}
	// The longest and most varied values each rule accepts.
	for _, sql := range []string{
		"SELECT streamer.publish('x', repeat('x', 1048576), event => 'ok.type-1:2_3')",
		"SELECT streamer.publish('a' || repeat('b', 199), 'd', event => repeat('t', 64))",
		"SELECT streamer.publish('0Az_.:/@=+-', 'd', event => 'Az09_.:-')",
		"SELECT streamer.publish('x', 'd', event => 'x')",
	} {
		_, err := s.pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
}

// requireOrdered checks that tokens parse and strictly increase.
func requireOrdered(t testing.TB, evs []received) {
	t.Helper()
	var prev cursor.Position
	for i, ev := range evs {
		p, err := cursor.Parse(ev.ID)
		require.NoError(t, err, "event %d", i)
		if i > 0 {
			require.True(t, prev.Less(p), "event %d: %s not after %s", i, p, prev)
		}
		prev = p
	}
}

func datas(evs []received) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Data
	}
	return out
}

// TestTransactionShapes checks that every way of inserting within a
// transaction gets the transaction numbered exactly once at commit.
func TestTransactionShapes(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	c := subscribe(t, s.url, []string{"shape"}, "")
	s.waitLive(t, 1)

	for _, tc := range []struct {
		name  string
		stmts []string
		want  []string
	}{
		{"several statements", []string{
			"INSERT INTO streamer.events (stream, data) VALUES ('shape', 'a1'), ('shape', 'a2')",
			"SELECT streamer.publish('shape', 'a3')",
		}, []string{"a1", "a2", "a3"}},
		{"first statement in a rolled-back savepoint", []string{
			"SAVEPOINT s",
			"SELECT streamer.publish('shape', 'gone')",
			"ROLLBACK TO SAVEPOINT s",
			"SELECT streamer.publish('shape', 'b1')",
		}, []string{"b1"}},
		{"constraints made immediate early", []string{
			"SET CONSTRAINTS ALL IMMEDIATE",
			"SELECT streamer.publish('shape', 'c1')",
			"SELECT streamer.publish('shape', 'c2')",
		}, []string{"c1", "c2"}},
		{"copy", nil, []string{"d1", "d2"}},
	} {
		tx, err := s.pool.Begin(ctx)
		require.NoError(t, err, tc.name)
		for _, q := range tc.stmts {
			_, err := tx.Exec(ctx, q)
			require.NoError(t, err, "%s: %s", tc.name, q)
		}
		if tc.stmts == nil {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"streamer", "events"}, []string{"stream", "data"},
				pgx.CopyFromRows([][]any{{"shape", "d1"}, {"shape", "d2"}}))
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(ctx), tc.name)
		require.Equal(t, tc.want, datas(c.take(len(tc.want))), tc.name)
	}

	var commits, pending int
	require.NoError(t, s.pool.QueryRow(ctx,
		"SELECT (SELECT count(*) FROM streamer.commits), (SELECT count(*) FROM streamer.pending_commits)").Scan(&commits, &pending))
	require.Equal(t, 4, commits, "one commit row per transaction")
	require.Equal(t, 0, pending)

	_, err := s.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data, txid) VALUES ('shape', 'x', '1')")
	require.ErrorContains(t, err, "txid_rule")
}
