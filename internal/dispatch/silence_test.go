package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestSilentConnection: a statement on a pool connection that went silent
// (blackholed: no answer, and no FIN or RST) is cut after ReadTimeout, and
// the pool's other connections, silent too, are dropped with it. A live
// read fails and is retried on a new connection, which delivers; a replay
// closes its subscriber, and the dispatcher serves others. Without the
// bound either would wait for TCP to give up.
func TestSilentConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, d *Dispatcher, b *bundle, silence func())
		// what the metrics count as failed reads, by kind
		failed map[string]int
	}{
		{"live read", func(t *testing.T, d *Dispatcher, b *bundle, silence func()) {
			s := subscribe(t, d, b, "s")
			silence()
			b.publish(t, "s", "one")
			d.Wake()
			require.ErrorIs(t, b.sig.ReadError.WaitOrTimeout(t), context.DeadlineExceeded)
			require.Equal(t, "one", s.next(t))
			// The pool's other silent connections were dropped with it: the
			// retry did not wait out another.
			b.sig.ReadError.RequireEmpty(t)
		}, map[string]int{metrics.ReadLive: 1}},
		{"replay", func(t *testing.T, d *Dispatcher, b *bundle, silence func()) {
			b.publish(t, "s", "old")
			silence()
			s := newFakeSub()
			_, err := d.Subscribe(ctx, s, []string{"s"}, &cursor.Start, nil)
			require.NoError(t, err)
			cause := s.waitClosed(t)
			require.ErrorIs(t, cause, errReplayFailed)
			require.ErrorIs(t, cause, context.DeadlineExceeded)

			other := subscribe(t, d, b, "s")
			require.Equal(t, []Subscriber{other}, b.reg.Lookup("s"))
		}, map[string]int{metrics.ReadReplay: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p *faultproxy.Proxy
			d, b, rec := setupMetrics(t, func(cfg *Config) {
				cfg.ReadTimeout = 300 * time.Millisecond
				cfg.Pool, p = pgtest.ProxiedPool(t, cfg.Pool.Config().ConnString(), 4, appName)
			})
			// Every connection open now goes silent; new ones pass.
			silence := func() {
				for _, c := range p.Conns() {
					c.Set(faultproxy.Both, faultproxy.Fault{Blackhole: true})
				}
			}
			tc.run(t, d, b, silence)
			d.Stop() // a read cut short by stopping is no failure
			require.Equal(t, tc.failed, rec.snapshot().readErrors)
		})
	}
}
