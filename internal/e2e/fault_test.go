package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestFault runs the fault tests of issue #15 against real server
// processes under load: publishers inserting with SQL (some transactions
// rolled back), subscribers resuming at random, and at the end the exact
// check that every subscriber received every committed event of its
// streams once, in order. Each fault is described, with its measured
// detection time, in docs/reliability.md. STREAMER_CHAOS=1 (make chaos)
// runs the longer, heavier versions.
func TestFault(t *testing.T) {
	bin := buildServer(t, t.TempDir())
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, bin string)
	}{
		{"listen blackhole", testFaultListenBlackhole},
		{"sequencer blackhole", testFaultSequencerBlackhole},
		{"read pool cut", testFaultReadPoolCut},
		{"read pool blackhole", testFaultReadPoolBlackhole},
		{"publish pool cut", testFaultPublishPoolCut},
		{"read-only database", testFaultReadOnly},
		{"server kill -9", testFaultServerKill},
		{"postgres fast shutdown", testFaultPostgresDown(syscall.SIGINT)},
		{"postgres kill -9", testFaultPostgresDown(syscall.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, bin) })
	}
}

// listenDetectBound is how long the listener may take to notice a LISTEN
// connection that went silent (no RST, no FIN) and make a new one: an idle
// wait of up to listener.DefaultPingInterval (5s), then a ping that times
// out after as long again, then a backoff of about 100ms and a connect.
// Twice that, for a busy CI machine.
const listenDetectBound = 2 * (5*time.Second + 5*time.Second + 500*time.Millisecond)

// blackholeLoad deploys a server behind a fault proxy and starts cfg's
// load on it, with more subscribers under make chaos; rounds is how many
// blackholes a test runs in a row: one, or three under make chaos.
func blackholeLoad(t *testing.T, bin string, cfg loadConfig) (d *deployment, p *faultproxy.Proxy, l *load, rounds int) {
	d = deploy(t, bin, withFaultProxy(t, &p))
	rounds = 1
	if chaos() {
		cfg.subscribers, rounds = 500, 3
	}
	return d, p, startLoad(t, d, cfg), rounds
}

// The LISTEN connection is blackholed: the server must notice within the
// bound, listen on a new connection, and deliver everything, including
// what was committed while nobody heard the notifications.
func testFaultListenBlackhole(t *testing.T, bin string) {
	d, p, l, rounds := blackholeLoad(t, bin, defaultLoad())
	var blackholed []*faultproxy.Conn
	for round := range rounds {
		l.waitPublished(50, longWait)
		// The newest: a blackholed one may linger (see below).
		lis := byApp(p, "streamer-listener")
		require.NotEmpty(t, lis, "a LISTEN connection")
		old := lis[len(lis)-1]
		require.NotContains(t, blackholed, old)
		old.Set(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		began := time.Now()
		waitFor(t, listenDetectBound, "a new LISTEN connection", func() bool {
			for _, c := range byApp(p, "streamer-listener") {
				if c.ID() > old.ID() {
					return true
				}
			}
			return false
		})
		t.Logf("round %d: LISTEN blackholed; a new LISTEN connection after %v", round, time.Since(began).Round(10*time.Millisecond))
		blackholed = append(blackholed, old)
		waitFor(t, shortWait, "/readyz 200", func() bool { return d.readyz() == 200 })
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
	// The server closes each silent connection itself; pgx first sends a
	// cancel request and drains the socket for up to 15s, hoping for the
	// server's own close (pgconn's asyncClose), which a blackhole never
	// sends.
	for _, c := range blackholed {
		testsignal.Receive(t, c.Done(), 15*time.Second+shortWait, "a blackholed LISTEN connection is still open")
	}
	require.Contains(t, d.logs.String(), "listener: lost connection")
}

// sequencerDetectBound is how long the sequencer lock may stay with a
// session gone silent: PostgreSQL ends it after the sequencer's
// SilenceTimeout (10s) without a statement; the server's sequencer
// reconnects after a backoff of 100ms and takes the lock. Twice that, for
// a busy CI machine.
const sequencerDetectBound = 2 * (10*time.Second + 500*time.Millisecond)

// The sequencer's connection is blackholed: PostgreSQL must end the silent
// session within the bound, the server's sequencer take the lock again on
// a new connection, and everything be delivered, including what committed
// while nobody ticked (in ticks mode nothing is delivered meanwhile; in
// trigger mode delivery goes on).
func testFaultSequencerBlackhole(t *testing.T, bin string) {
	d, p, l, rounds := blackholeLoad(t, bin, defaultLoad())
	for round := range rounds {
		l.waitPublished(50, longWait)
		seq := byApp(p, "streamer-sequencer")
		require.Len(t, seq, 1, "one sequencer connection")
		old := seq[0]
		old.Set(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		began := time.Now()
		waitFor(t, sequencerDetectBound, "the sequencer to lead again", func() bool {
			return strings.Count(d.logs.String(), sequencerLog) == round+2
		})
		t.Logf("round %d: sequencer blackholed; it leads again on a new connection after %v", round, time.Since(began).Round(10*time.Millisecond))
		// PostgreSQL ended the silent session; the proxy then closed it.
		testsignal.Receive(t, old.Done(), shortWait, "the blackholed sequencer connection is still open")
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
}

// The read pool's connections are reset again and again while live reads
// and replays are under way (every answer is held 5ms, so a reset finds
// queries in flight), until both a live read and a replay have been cut
// mid-query: the server must retry the live read, close the replaying
// subscriber so that it resumes, and lose or repeat nothing.
func testFaultReadPoolCut(t *testing.T, bin string) {
	var p *faultproxy.Proxy
	d := deploy(t, bin, withFaultProxy(t, &p))
	p.SetAll(faultproxy.Down, faultproxy.Fault{Delay: 5 * time.Millisecond})
	cfg := defaultLoad()
	cfg.connLife = 2 * time.Second // more replays
	// In the ticks mode a tick's notification carries its events and no
	// live read happens; an event too large for it makes each tick a read.
	cfg.unwatched = 8000
	minCuts, maxCuts := 3, 30
	if chaos() {
		cfg.subscribers, minCuts = 500, 30
	}
	l := startLoad(t, d, cfg)
	// Cut only once the subscribers resume from real positions: a replay
	// from the start token, before anything was published, has nothing to
	// lose.
	waitFor(t, longWait, "every subscriber to resume once", func() bool { return l.connects() >= 2*cfg.subscribers })
	cutReads := func(what string) int {
		n := 0
		for _, line := range strings.Split(d.logs.String(), "\n") {
			if strings.Contains(line, what) && strings.Contains(line, "connection reset by peer") &&
				!strings.Contains(line, "read events after 0:") {
				n++
			}
		}
		return n
	}
	resets, cuts := 0, 0
	for ; cuts < maxCuts; cuts++ {
		if cuts >= minCuts && cutReads("live read failed") > 0 && cutReads("replay failed") > 0 {
			break
		}
		resets += resetApp(l, p, "streamer")
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
	live, replay := cutReads("live read failed"), cutReads("replay failed")
	t.Logf("%d rounds, %d read-pool connections reset; cut mid-query: %d live reads, %d replays", cuts, resets, live, replay)
	require.NotZero(t, live, "no live read was cut mid-query")
	require.NotZero(t, replay, "no replay was cut mid-query")
}

// The publish pool's connections (application_name=streamer-publish) are
// reset again and again while POST /publish requests are being committed
// (every answer held 5ms, so a reset finds a batch in flight, sometimes
// its COMMIT): every request answered 200 must be in the database, once,
// and nothing else published may be doubled by a retry.
func testFaultPublishPoolCut(t *testing.T, bin string) {
	var p *faultproxy.Proxy
	d := deploy(t, bin, withFaultProxy(t, &p))
	p.SetAll(faultproxy.Down, faultproxy.Fault{Delay: 5 * time.Millisecond})
	cfg := defaultLoad()
	cfg.publishers, cfg.httpPublish = 1, 4
	cuts := 5
	if chaos() {
		cfg.subscribers, cuts = 500, 40
	}
	l := startLoad(t, d, cfg)
	resets := 0
	for range cuts {
		resets += resetApp(l, p, "streamer-publish")
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
	retried := strings.Count(d.logs.String(), "batch: commit failed; retrying")
	unknown := strings.Count(d.logs.String(), "batch: outcome of COMMIT unknown")
	t.Logf("%d rounds, %d publish-pool connections reset; the batcher retried %d times, %d outcomes unknown", cuts, resets, retried, unknown)
	l.pubMu.Lock()
	for status := range l.httpStatus {
		// A reset is retried within the publish timeout; 504 says the
		// outcome of an interrupted COMMIT could not be looked up.
		assert.Contains(t, []int{503, 504}, status, "POST /publish answered %d while its connections were reset", status)
	}
	l.pubMu.Unlock()
	require.NotZero(t, retried, "no reset hit a publish in flight: the test did not test anything")
}

// The database turns read-only, as a primary demoted to a standby during a
// failover looks to its clients: new sessions get
// default_transaction_read_only. Publishing through HTTP must fail fast
// with an error that says why; subscribing must keep working (reads and
// LISTEN need no writes), and publishing works again once the database
// accepts writes.
func testFaultReadOnly(t *testing.T, bin string) {
	const publishTimeout = 10 * time.Second
	d := deploy(t, bin, withEnv("STREAMER_PUBLISH_TIMEOUT", publishTimeout.String()))
	l := startLoad(t, d, defaultLoad())
	l.waitPublished(30, longWait)
	require.Equal(t, 200, d.postPublish(t, "load-0", "before read-only", longWait).status)

	setReadOnly := func(on bool) {
		ctx := context.Background()
		var db string
		require.NoError(t, d.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db))
		stmt := "ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " RESET default_transaction_read_only"
		if on {
			stmt = "ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " SET default_transaction_read_only = on"
		}
		// A connection the pool opened while the database was read-only
		// is read-only by default: this session is made read-write first,
		// in a transaction of its own (the next one starts read-write).
		conn, err := d.pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		_, err = conn.Exec(ctx, "SET default_transaction_read_only = off")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, stmt)
		require.NoError(t, err)
		// The setting applies to new sessions: end the server's.
		_, err = d.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE 'streamer%'`)
		require.NoError(t, err)
	}
	setReadOnly(true)
	t.Cleanup(func() { setReadOnly(false) })

	l.waitPublished(30, longWait) // the test's own READ WRITE transactions go on
	ans := d.postPublish(t, "load-0", "while read-only", publishTimeout+shortWait)
	t.Logf("POST /publish on a read-only database: %d in %v: %s", ans.status, ans.took.Round(time.Millisecond), ans.body)
	require.Less(t, ans.took, publishTimeout/2, "did not fail fast")
	require.NotEqual(t, 200, ans.status)

	l.waitPublished(50, longWait)
	l.finish(longWait)

	setReadOnly(false)
	waitFor(t, longWait, "publishing through HTTP to work again", func() bool {
		return d.postPublish(t, "load-0", "after read-only", longWait).status == 200
	})

	// Last, so that everything above is checked either way.
	require.Equal(t, 503, ans.status, "POST /publish on a read-only database: %s", ans.body)
	require.NotEmpty(t, ans.retryAfter, "503 without Retry-After")
	require.Contains(t, ans.body, "read-only")
}

// The server process is killed (SIGKILL) under load, and started again on
// the same address: every subscriber resumes from its Last-Event-ID and
// ends exact.
func testFaultServerKill(t *testing.T, bin string) {
	d := deploy(t, bin)
	cfg := defaultLoad()
	cfg.subscribers = 1000
	cfg.connLife = 10 * time.Second
	kills := 1
	if chaos() {
		kills = 3
	}
	l := startLoad(t, d, cfg)
	for range kills {
		l.waitPublished(50, longWait)
		d.kill()
		l.waitPublished(50, longWait) // published while the server is down
		began := time.Now()
		d.start()
		t.Logf("server restarted and ready in %v", time.Since(began).Round(10*time.Millisecond))
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
}

// PostgreSQL goes down twice in a row under load, by a fast shutdown
// (SIGINT, what pg_ctl restart -m fast sends) or by SIGKILL of the
// postmaster, and comes back after the checks below. While it is down
// /readyz must answer 503 and POST /publish 503 with Retry-After within the
// publish timeout (not 500, not a hang); after, /readyz 200 again. Nothing
// whose COMMIT succeeded may be lost, and every subscriber ends exact.
func testFaultPostgresDown(sig syscall.Signal) func(t *testing.T, bin string) {
	return func(t *testing.T, bin string) {
		const publishTimeout = 3 * time.Second
		c := newCluster(t)
		d := deployOn(t, bin, c, withEnv("STREAMER_PUBLISH_TIMEOUT", publishTimeout.String()))
		l := startLoad(t, d, defaultLoad())
		outages := 2
		if chaos() {
			outages = 6
		}
		for i := range outages {
			l.waitPublished(30, longWait)
			began := time.Now()
			c.down(sig, longWait)
			down := time.Since(began)
			var ready []int // every answer, for the failure message
			waitFor(t, longWait, "/readyz 503", func() bool {
				ready = append(ready, d.readyz())
				if len(ready) == int(longWait/(100*time.Millisecond)) {
					t.Logf("/readyz answers while the database is down: %v", ready)
				}
				return ready[len(ready)-1] == 503
			})
			notReady := time.Since(began)

			ans := d.postPublish(t, "load-0", "while down", publishTimeout+shortWait)
			t.Logf("outage %d (%v): postmaster gone after %v, /readyz 503 after %v; POST /publish: %d in %v, Retry-After %q: %s",
				i, sig, down.Round(time.Millisecond), notReady.Round(time.Millisecond),
				ans.status, ans.took.Round(time.Millisecond), ans.retryAfter, strings.TrimSpace(ans.body))
			require.Equal(t, 503, ans.status, "POST /publish while the database is down")
			require.NotEmpty(t, ans.retryAfter, "Retry-After")

			began = time.Now()
			c.start()
			started := time.Since(began)
			waitFor(t, longWait, "/readyz 200", func() bool { return d.readyz() == 200 })
			t.Logf("outage %d: PostgreSQL accepting connections after %v, /readyz 200 after %v",
				i, started.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
			attempt := 0
			waitFor(t, longWait, "POST /publish to succeed", func() bool {
				// Each attempt's data is its own: the load's final check
				// requires every data string in the database once.
				attempt++
				data := fmt.Sprintf("after outage %d, attempt %d", i, attempt)
				return d.postPublish(t, "load-1", data, longWait).status == 200
			})
		}
		l.waitPublished(50, longWait)
		l.finish(longWait)
	}
}

// readDetectBound is how long the read pool's silent connections may hold
// up delivery: one statement's ReadTimeout (10s, dispatch.Config), after
// which the dispatcher drops the pool's connections and a live read is
// retried 1s later on a new one. Twice that, for a busy CI machine.
const readDetectBound = 2 * (10*time.Second + time.Second + 500*time.Millisecond)

// Every connection of the read pool is blackholed under load (new ones
// pass): the first statement on one must time out within the bound, the
// dispatcher drop the pool's connections and go on, on new ones, and every
// subscriber end exact (a replay cut short closes its subscriber, which
// resumes).
func testFaultReadPoolBlackhole(t *testing.T, bin string) {
	cfg := defaultLoad()
	cfg.unwatched = 8000 // in ticks mode, a read per tick (see above)
	d, p, l, rounds := blackholeLoad(t, bin, cfg)
	const dropped = "a read timed out; closing the read pool's connections"
	var silenced []*faultproxy.Conn
	for round := range rounds {
		l.waitPublished(50, longWait)
		now := byApp(p, "streamer")
		require.NotEmpty(t, now, "read-pool connections")
		for _, c := range now {
			c.Set(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		}
		silenced = append(silenced, now...)
		before := strings.Count(d.logs.String(), dropped)
		began := time.Now()
		waitFor(t, readDetectBound, "a read to time out", func() bool { return strings.Count(d.logs.String(), dropped) > before })
		t.Logf("round %d: %d read-pool connections blackholed; a read timed out after %v", round, len(now), time.Since(began).Round(10*time.Millisecond))
	}
	l.waitPublished(50, longWait)
	l.finish(longWait)
	for _, c := range silenced {
		testsignal.Receive(t, c.Done(), 15*time.Second+shortWait, "a blackholed read-pool connection is still open")
	}
}

// resetApp waits for 30 more committed events, then resets every proxied
// connection of app (its application_name), and returns how many it reset.
func resetApp(l *load, p *faultproxy.Proxy, app string) int {
	l.t.Helper()
	l.waitPublished(30, longWait)
	n := 0
	for _, c := range byApp(p, app) {
		c.Reset()
		n++
	}
	return n
}
