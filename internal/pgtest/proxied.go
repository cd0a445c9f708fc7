package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
)

// ProxiedPool returns a pool of maxConns connections, all open, on the
// database of url through a fault proxy, and the proxy; app, when set, is
// the connections' application_name. At the test's end the proxy's
// connections are reset first (pgx drains a connection that went silent
// for up to 15s before closing it), then the pool and the proxy closed.
func ProxiedPool(t testing.TB, url string, maxConns int32, app string) (*pgxpool.Pool, *faultproxy.Proxy) {
	t.Helper()
	ctx := context.Background()
	p, proxied, err := faultproxy.StartFor(url)
	require.NoError(t, err, "pgtest: start a fault proxy")
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	cfg, err := pgxpool.ParseConfig(proxied)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	if app != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = app
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err, "pgtest: open a proxied pool")
	t.Cleanup(pool.Close)
	t.Cleanup(func() { p.ResetAll() })
	held := make([]*pgxpool.Conn, 0, maxConns)
	for range maxConns {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err, "pgtest: open a proxied connection")
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	return pool, p
}
