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

// TestUpgrade: a database left by migration 003 with events in it is
// migrated to the latest version in place: rows kept, no audience, the
// audience rule validated.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	defer conn.Close(ctx)

	_, err = conn.Exec(ctx, "DROP SCHEMA streamer CASCADE")
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

	var version int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+migrations.VersionTable).Scan(&version))
	require.Equal(t, int32(5), version, "the newest migration is 005")
}
