package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// History is a past to write straight into the tables with [WriteHistory]:
// Commits transactions of PerCommit events each, numbered by hand.
type History struct {
	Commits   int           // commits numbered 1 to Commits
	PerCommit int           // events per commit; 0 means 1
	Streams   int           // the events go round Prefix+"0" to Prefix+(Streams-1); 0 means 50
	Prefix    string        // of the stream names; "" means "s"
	Data      string        // every event's data; "" means "x"
	Age       time.Duration // committed_at is now() minus Age; 0 leaves it to the column's default
}

// historyTxid is the first transaction id a History is numbered from: far
// above any a test's own transactions get.
const historyTxid = 1_000_000_000_000

// enableTrigger turns a trigger on again in the mode pg_trigger.tgenabled
// said it was in.
var enableTrigger = map[string]string{"O": "ENABLE TRIGGER", "A": "ENABLE ALWAYS TRIGGER", "R": "ENABLE REPLICA TRIGGER"}

// WriteHistory writes h in one transaction, with the events table's
// triggers off (one transaction cannot commit Commits times) and then on
// again as they were, so that it works in either ordering mode; it moves
// streamer.commit_seq past it so that later commits follow it, and
// ANALYZEs both tables for the plan tests that read it. Events have ids 1
// up, in commit order, when the database had none before.
func WriteHistory(tb testing.TB, pool *pgxpool.Pool, h History) {
	tb.Helper()
	if h.PerCommit == 0 {
		h.PerCommit = 1
	}
	if h.Streams == 0 {
		h.Streams = 50
	}
	if h.Prefix == "" {
		h.Prefix = "s"
	}
	if h.Data == "" {
		h.Data = "x"
	}
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(tb, err)
	defer func() { _ = tx.Rollback(ctx) }()
	exec := func(sql string, args ...any) {
		tb.Helper()
		_, err := tx.Exec(ctx, sql, args...)
		require.NoError(tb, err, sql)
	}
	// The triggers on now, to turn on again as they were: the ordering mode
	// keeps some of them off (migrations/007_ticks.sql).
	rows, err := tx.Query(ctx, `SELECT tgname, tgenabled FROM pg_trigger
		WHERE tgrelid = 'streamer.events'::regclass AND NOT tgisinternal AND tgenabled <> 'D'`)
	require.NoError(tb, err)
	type trigger struct {
		Name    string
		Enabled string
	}
	on, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trigger])
	require.NoError(tb, err)
	for _, tr := range on {
		exec("ALTER TABLE streamer.events DISABLE TRIGGER " + pgx.Identifier{tr.Name}.Sanitize())
	}
	exec(`INSERT INTO streamer.events (stream, data, txid)
		SELECT $1::text || (g % $2::int), $3::text, ($4::bigint + (g - 1) / $5::int + 1)::text::xid8
		FROM generate_series(1, $6::bigint * $5::int) g`,
		h.Prefix, h.Streams, h.Data, int64(historyTxid), h.PerCommit, h.Commits)
	for _, tr := range on {
		exec("ALTER TABLE streamer.events " + enableTrigger[tr.Enabled] + " " + pgx.Identifier{tr.Name}.Sanitize())
	}
	if h.Age == 0 {
		exec(`INSERT INTO streamer.commits (seq, txid)
			SELECT g, ($1::bigint + g)::text::xid8 FROM generate_series(1, $2::bigint) g`,
			int64(historyTxid), h.Commits)
	} else {
		exec(`INSERT INTO streamer.commits (seq, txid, committed_at)
			SELECT g, ($1::bigint + g)::text::xid8, now() - make_interval(secs => $3)
			FROM generate_series(1, $2::bigint) g`,
			int64(historyTxid), h.Commits, h.Age.Seconds())
	}
	if h.Commits > 0 {
		exec("SELECT setval('streamer.commit_seq', $1)", h.Commits)
	}
	require.NoError(tb, tx.Commit(ctx))
	for _, table := range []string{"streamer.events", "streamer.commits"} {
		_, err := pool.Exec(ctx, "ANALYZE "+table)
		require.NoError(tb, err)
	}
}
