package publisher_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/publisher"
)

// audienceByID returns every stored event's audience by id.
func audienceByID(t *testing.T, pool *pgxpool.Pool) map[publisher.ID][]string {
	t.Helper()
	got := map[publisher.ID][]string{}
	rs, err := pool.Query(context.Background(), "SELECT id, audience FROM streamer.events")
	require.NoError(t, err)
	for rs.Next() {
		var id publisher.ID
		var aud []string
		require.NoError(t, rs.Scan(&id, &aud))
		got[id] = aud
	}
	require.NoError(t, rs.Err())
	return got
}

// TestAudience: Event.Audience round-trips through Publish, PublishAll and
// PublishTx (nil stores NULL), and a bad one is a RuleError for the field
// audience.
func TestAudience(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	awkward := []string{`with "quotes", {braces} and \ backslash`, "NULL", "user:1"}

	t.Run("Publisher", func(t *testing.T) {
		t.Parallel()
		p, pool := setup(t, publisher.Config{})
		one, err := p.Publish(ctx, publisher.Event{Stream: "s", Data: "a", Audience: []string{"team:7"}})
		require.NoError(t, err)
		all, err := p.PublishAll(ctx,
			publisher.Event{Stream: "s", Data: "b"},
			publisher.Event{Stream: "s", Data: "c", Audience: awkward})
		require.NoError(t, err)
		got := audienceByID(t, pool)
		require.Equal(t, []string{"team:7"}, got[one])
		require.Nil(t, got[all[0]])
		require.Equal(t, awkward, got[all[1]])

		_, err = p.Publish(ctx, publisher.Event{Stream: "s", Data: "x", Audience: []string{}})
		var re *publisher.RuleError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "audience", re.Field)
		require.Equal(t, "audience_rule", re.Rule)
	})

	t.Run("PublishTx", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.NewPool(t)
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		ids, err := publisher.PublishTx(ctx, tx,
			publisher.Event{Stream: "s", Data: "a", Audience: awkward},
			publisher.Event{Stream: "s", Data: "b"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		got := audienceByID(t, pool)
		require.Equal(t, awkward, got[ids[0]])
		require.Nil(t, got[ids[1]])

		tx, err = pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = publisher.PublishTx(ctx, tx, publisher.Event{Stream: "s", Data: "x", Audience: []string{"a", ""}})
		var re *publisher.RuleError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "audience", re.Field)
		require.Contains(t, re.Error(), "audience[1] is empty")
	})
}
