package batch

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestSilentConnection: every connection of the publish pool goes silent
// (blackholed: no answer, no FIN or RST). The attempt times out after
// AttemptTimeout, the pool's connections are dropped with it, and the one
// retry, on a new connection, commits: the event is stored once.
func TestSilentConnection(t *testing.T) {
	t.Parallel()
	var p *faultproxy.Proxy
	var direct *pgxpool.Pool
	b, bb := setup(t, func(cfg *Config, _ *Batcher) {
		direct = cfg.Pool
		cfg.Pool, p = pgtest.ProxiedPool(t, cfg.Pool.Config().ConnString(), 3, "")
		cfg.AttemptTimeout = 300 * time.Millisecond
	})
	for _, c := range p.Conns() {
		c.Set(faultproxy.Both, faultproxy.Fault{Blackhole: true})
	}
	res := publishAsync(b, context.Background(), []Event{ev("s", 0)})
	require.ErrorIs(t, bb.signals.Backoff.WaitOrTimeout(t), context.DeadlineExceeded)
	r := waitResult(t, res)
	require.NoError(t, r.err)
	require.Len(t, r.ids, 1)
	bb.signals.Backoff.RequireEmpty(t) // the retry did not wait out another
	require.Len(t, rows(t, direct), 1)
}
