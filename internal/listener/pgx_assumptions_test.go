package listener

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestPgxAssumptions pins the pgx behaviour the listener is built on (see
// "Reading notifications without losing the connection" in doc.go), so that
// a pgx upgrade that changes it fails here rather than in production.
func TestPgxAssumptions(t *testing.T) {
	t.Parallel()

	// connect returns a connection configured as the listener's, LISTENing.
	connect := func(t *testing.T) (*pgx.Conn, *testBundle) {
		t.Helper()
		l, bundle := setup(t, nil)
		cfg, err := l.connConfig()
		require.NoError(t, err)
		conn, err := l.connectAndListen(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { closeConn(conn) })
		return conn, bundle
	}

	t.Run("DeadlineKeepsConnection", func(t *testing.T) {
		t.Parallel()

		conn, bundle := connect(t)
		for range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			_, err := conn.WaitForNotification(ctx)
			require.True(t, isTimeout(ctx, conn, err), "got %v", err)
			require.True(t, pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded))
			cancel()
			require.False(t, conn.IsClosed())
		}
		require.NoError(t, conn.Ping(context.Background()))

		notify(t, bundle)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := conn.WaitForNotification(ctx)
		require.NoError(t, err)
		require.Equal(t, DefaultChannel, n.Channel)
	})

	t.Run("DoneContextReadsNothing", func(t *testing.T) {
		t.Parallel()

		conn, _ := connect(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := conn.WaitForNotification(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, conn.IsClosed(), "a context done before the call does not touch the connection")
		require.NoError(t, conn.Ping(context.Background()))
	})

	t.Run("NotificationsDuringQueriesAreKept", func(t *testing.T) {
		t.Parallel()

		conn, _ := connect(t)
		// The listening session notifies itself: the notification arrives
		// while Exec reads its result, and pgx.Conn keeps it for the next
		// WaitForNotification, which returns it without reading the socket
		// (so even with a context that is already done).
		_, err := conn.Exec(context.Background(), "SELECT pg_notify($1, 'self')", DefaultChannel)
		require.NoError(t, err)
		require.NoError(t, conn.Ping(context.Background()))

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := conn.WaitForNotification(ctx)
		require.NoError(t, err)
		require.Equal(t, "self", n.Payload)
	})
}
