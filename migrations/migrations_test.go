package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPublishSignatures: streamer.publish keeps every call written for the
// old signature and takes an optional audience.
func TestPublishSignatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	for _, tc := range []struct {
		call     string
		event    *string
		audience []string
	}{
		{call: "streamer.publish('s', 'd')"},
		{call: "streamer.publish('s', 'd', 't')", event: ptr("t")},
		{call: "streamer.publish('s', 'd', event => 't')", event: ptr("t")},
		{call: "streamer.publish(stream => 's', data => 'd')"},
		{call: "streamer.publish('s', 'd', audience => ARRAY['u:1'])", audience: []string{"u:1"}},
		{call: "streamer.publish('s', 'd', event => 't', audience => ARRAY['u:1', 'team:7'])", event: ptr("t"), audience: []string{"u:1", "team:7"}},
		{call: "streamer.publish('s', 'd', 't', ARRAY['u:1'])", event: ptr("t"), audience: []string{"u:1"}},
	} {
		t.Run(tc.call, func(t *testing.T) {
			var id int64
			require.NoError(t, pool.QueryRow(ctx, "SELECT "+tc.call).Scan(&id))
			var (
				event    *string
				audience []string
			)
			require.NoError(t, pool.QueryRow(ctx,
				"SELECT event, audience FROM streamer.events WHERE id = $1", id).Scan(&event, &audience))
			require.Equal(t, tc.event, event)
			require.Equal(t, tc.audience, audience)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestAudienceRule: NULL or a flat array of non-empty values; anything else
// is refused by audience_rule.
func TestAudienceRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	insert := func(audience string) error {
		_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, data, audience) VALUES ('s', 'd', "+audience+")")
		return err
	}
	for _, ok := range []string{"NULL", "ARRAY['a']", "ARRAY['sub-1', 'team:7']", "(SELECT array_agg(g::text) FROM generate_series(1, 1000) g)"} {
		t.Run("accepts "+ok, func(t *testing.T) { require.NoError(t, insert(ok)) })
	}
	for _, bad := range []string{
		"'{}'",
		"ARRAY[NULL]::text[]",
		"ARRAY['a', NULL]",
		"ARRAY['']",
		"ARRAY['a', '']",
		"ARRAY[ARRAY['a'], ARRAY['b']]",
		"(SELECT array_agg(g::text) FROM generate_series(1, 1001) g)",
	} {
		t.Run("refuses "+bad, func(t *testing.T) {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, insert(bad), &pgErr)
			require.Equal(t, "23514", pgErr.Code)
			require.Equal(t, "audience_rule", pgErr.ConstraintName)
		})
	}
}

// connect returns one connection to a database of its own, closed at
// cleanup: what MigrateTo and SetOrdering take.
func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// latest is the number of the newest migration.
const latest int32 = 10

// TestUpgrade: a database left by migration 003 with events in it is
// migrated to the latest version in place: rows kept, no audience, the
// audience rule validated, retention state empty.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t)

	_, err := conn.Exec(ctx, "DROP SCHEMA streamer CASCADE")
	require.NoError(t, err)
	require.NoError(t, migrations.MigrateTo(ctx, conn, 3))
	_, err = conn.Exec(ctx, "SELECT streamer.publish('s', 'before', 'old')")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO streamer.events (stream, data) SELECT 's', g::text FROM generate_series(1, 1000) g")
	require.NoError(t, err)

	require.NoError(t, migrations.Migrate(ctx, conn))
	require.NoError(t, migrations.Migrate(ctx, conn), "idempotent")

	var n, withAudience int
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT count(*), count(audience) FROM streamer.events").Scan(&n, &withAudience))
	require.Equal(t, 1001, n)
	require.Zero(t, withAudience)
	var validated bool
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT convalidated FROM pg_constraint WHERE conname = 'audience_rule'").Scan(&validated))
	require.True(t, validated)
	var seq, id int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT seq, id FROM streamer.pruned").Scan(&seq, &id))
	require.Zero(t, seq)
	require.Zero(t, id)

	var version int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+migrations.VersionTable).Scan(&version))
	require.Equal(t, latest, version, "the newest migration")
	mode, err := migrations.ReadOrdering(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, migrations.Trigger, mode, "007 leaves the database as it was; streamer migrate switches")
}

// TestOrderingSwitch: switching between trigger and ticks and back numbers
// every committed event exactly once, tokens taken in one mode resume in
// the other, and a transaction that began (with an xid) before a switch and
// inserted after it is numbered by the mode it published under.
func TestOrderingSwitch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	head := func() string {
		t.Helper()
		var h string
		require.NoError(t, conn.QueryRow(ctx, "SELECT streamer.head()").Scan(&h))
		return h
	}
	after := func(token string) []string { return pgtest.DataAfter(t, conn, token) }

	require.NoError(t, migrations.SetOrdering(ctx, conn, migrations.Trigger))
	start := head()
	exec("SELECT streamer.publish('s', 'trigger-1')")
	tokTrigger := head()

	// A transaction with an xid from before the switch, inserting after it.
	late, err := pgx.Connect(ctx, conn.Config().ConnString())
	require.NoError(t, err)
	defer late.Close(ctx)
	_, err = late.Exec(ctx, "BEGIN; SELECT pg_current_xact_id()")
	require.NoError(t, err)

	require.NoError(t, migrations.SetOrdering(ctx, conn, migrations.Ticks))
	mode, err := migrations.ReadOrdering(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, migrations.Ticks, mode)
	_, err = late.Exec(ctx, "SELECT streamer.publish('s', 'late'); COMMIT")
	require.NoError(t, err)
	exec("SELECT streamer.publish('s', 'ticks-1')")
	exec("SELECT streamer.tick()")
	tokTicks := head()
	exec("SELECT streamer.publish('s', 'ticks-2')") // numbered by the switch's last tick

	require.NoError(t, migrations.SetOrdering(ctx, conn, migrations.Trigger))
	exec("SELECT streamer.publish('s', 'trigger-2')")

	require.Equal(t, []string{"trigger-1", "late", "ticks-1", "ticks-2", "trigger-2"}, after(start))
	require.Equal(t, []string{"late", "ticks-1", "ticks-2", "trigger-2"}, after(tokTrigger))
	require.Equal(t, []string{"ticks-2", "trigger-2"}, after(tokTicks))
	var dup int
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT count(*) FROM (SELECT txid FROM streamer.commits GROUP BY txid HAVING count(*) > 1) d").Scan(&dup))
	require.Zero(t, dup)
	// Trigger mode NOTIFYs again, ticks mode does not (checked by the
	// trigger's state).
	var enabled string
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'events_notify'").Scan(&enabled))
	require.Equal(t, "O", enabled)
}

// TestApplyOrdering: what `streamer migrate` leaves a database in. Without
// STREAMER_ORDERING a new database (no migration applied before) gets
// ticks and an existing one keeps its mode, an upgrade from before 007
// included; STREAMER_ORDERING switches either way.
func TestApplyOrdering(t *testing.T) {
	t.Parallel()
	const (
		fresh = -1 // the schema dropped: no migration applied
		as    = 0  // the test database as pgtest made it, then set to from
	)
	for _, tc := range []struct {
		name      string
		version   int32               // fresh, as, or a migration to stop at first
		from      migrations.Ordering // the mode before (when version is as)
		want      migrations.Ordering // STREAMER_ORDERING
		mode      migrations.Ordering // the mode after
		applied   int32               // AppliedVersion before Migrate
		reasonHas string
	}{
		{"new database gets ticks", fresh, "", "", migrations.Ticks, 0, "new database"},
		{"existing trigger database stays trigger", as, migrations.Trigger, "", migrations.Trigger, latest, "unchanged"},
		{"existing ticks database stays ticks", as, migrations.Ticks, "", migrations.Ticks, latest, "unchanged"},
		{"upgrade from 006 stays trigger", 6, "", "", migrations.Trigger, 6, "unchanged"},
		{"explicit ticks switches", as, migrations.Trigger, migrations.Ticks, migrations.Ticks, latest, "STREAMER_ORDERING"},
		{"explicit trigger switches", as, migrations.Ticks, migrations.Trigger, migrations.Trigger, latest, "STREAMER_ORDERING"},
		{"explicit trigger on a new database", fresh, "", migrations.Trigger, migrations.Trigger, 0, "STREAMER_ORDERING"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn := connect(t)
			switch {
			case tc.version == as:
				require.NoError(t, migrations.SetOrdering(ctx, conn, tc.from))
			default:
				_, err := conn.Exec(ctx, "DROP SCHEMA streamer CASCADE")
				require.NoError(t, err)
				if tc.version > 0 {
					require.NoError(t, migrations.MigrateTo(ctx, conn, tc.version))
				}
			}
			applied, err := migrations.AppliedVersion(ctx, conn)
			require.NoError(t, err)
			require.Equal(t, tc.applied, applied)
			require.NoError(t, migrations.Migrate(ctx, conn))

			mode, reason, err := migrations.ApplyOrdering(ctx, conn, tc.want, applied)
			require.NoError(t, err)
			require.Equal(t, tc.mode, mode)
			require.Contains(t, reason, tc.reasonHas)
			inDB, err := migrations.ReadOrdering(ctx, conn)
			require.NoError(t, err)
			require.Equal(t, tc.mode, inDB, "the database's mode")
		})
	}
}
