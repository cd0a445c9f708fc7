package silence_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/silence"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestBound: Bound sets both idle timeouts of the session, and 0 turns
// them off again.
func TestBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	settings := func() []string {
		var inTx, idle string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('idle_session_timeout')").Scan(&inTx, &idle))
		return []string{inTx, idle}
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{1500 * time.Millisecond, "1500ms"}, {0, "0"}} {
		outside, err := silence.Bound(ctx, conn, tc.d)
		require.NoError(t, err)
		require.True(t, outside, "PostgreSQL 14 or later")
		require.Equal(t, []string{tc.want, tc.want}, settings())
	}
}

// TestDropOnTimeout: a pool is emptied for a deadline that ran out, however
// wrapped, and for nothing else.
func TestDropOnTimeout(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	for _, tc := range []struct {
		err  error
		drop bool
	}{
		{fmt.Errorf("read events: %w", context.DeadlineExceeded), true},
		{context.Canceled, false},
		{errors.New("connection reset by peer"), false},
		{nil, false},
	} {
		require.NoError(t, pool.Ping(context.Background()))
		require.Equal(t, tc.drop, silence.DropOnTimeout(pool, tc.err), "%v", tc.err)
		idle := pool.Stat().IdleConns()
		if tc.drop {
			require.Zero(t, idle, "%v", tc.err)
		} else {
			require.NotZero(t, idle, "%v", tc.err)
		}
	}
}
