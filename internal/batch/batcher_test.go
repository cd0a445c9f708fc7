package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// bundle holds what a test needs next to the Batcher under test.
type bundle struct {
	pool     *pgxpool.Pool
	signals  *TestSignals
	failures chan Failure // from OnError
}

// setup returns a started Batcher on a fresh database, stopped at cleanup.
// configure may adjust the Config (and the Batcher, before Start).
func setup(t *testing.T, configure func(*Config, *Batcher)) (*Batcher, *bundle) {
	t.Helper()
	bb := &bundle{
		pool:     pgtest.NewPool(t),
		signals:  &TestSignals{},
		failures: make(chan Failure, 100),
	}
	// Enqueued and Committed fire often; tests that wait on them Init them.
	bb.signals.Committing.Init()
	bb.signals.Backoff.Init()
	bb.signals.Resolved.Init()
	bb.signals.Rejected.Init()
	cfg := Config{
		Pool:        bb.pool,
		MinBackoff:  time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
		OnError:     func(f Failure) { bb.failures <- f },
		Logger:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		TestSignals: bb.signals,
	}
	b := New(cfg)
	if configure != nil {
		configure(&cfg, b)
		commit := b.commit
		*b = *New(cfg)
		b.commit = commit
	}
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(b.Stop)
	return b, bb
}

type row struct {
	Stream, Data string
	Type         *string
}

// rows returns every stored event by id.
func rows(t *testing.T, pool *pgxpool.Pool) map[int64]row {
	t.Helper()
	got := map[int64]row{}
	rs, err := pool.Query(context.Background(), "SELECT id, stream, event, data FROM streamer.events")
	require.NoError(t, err)
	for rs.Next() {
		var id int64
		var r row
		require.NoError(t, rs.Scan(&id, &r.Stream, &r.Type, &r.Data))
		got[id] = r
	}
	require.NoError(t, rs.Err())
	return got
}

func ev(stream string, i int) Event {
	return Event{Stream: stream, Data: fmt.Sprintf("%s-%d", stream, i)}
}

// waitForLockWait waits until backend pid waits on a lock.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool, pid uint32) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(context.Background(),
			"SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1", int32(pid)).Scan(&waiting)
		return err == nil && waiting
	}, testsignal.Timeout, 5*time.Millisecond)
}

func publishAsync(b *Batcher, ctx context.Context, events []Event) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ids, err := b.Publish(ctx, events)
		ch <- result{ids, err}
	}()
	return ch
}

type result struct {
	ids []int64
	err error
}

func waitResult(t *testing.T, ch <-chan result) result {
	t.Helper()
	return testsignal.Receive(t, ch, testsignal.Timeout, "Publish did not return")
}

func TestPublish(t *testing.T) {
	t.Parallel()

	t.Run("IdsMatchRowsInOrder", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) { c.MaxBatchEvents = 7 })
		ctx := context.Background()
		const goroutines, per = 10, 30
		var wg sync.WaitGroup
		all := make([][]int64, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				events := make([]Event, 3)
				for i := 0; i < per; i += 3 {
					for j := range events {
						events[j] = ev(fmt.Sprintf("g%d", g), i+j)
					}
					ids, err := b.Publish(ctx, events)
					require.NoError(t, err)
					all[g] = append(all[g], ids...)
				}
			})
		}
		wg.Wait()
		stored := rows(t, bb.pool)
		require.Len(t, stored, goroutines*per)
		for g, ids := range all {
			require.IsIncreasing(t, ids, "one goroutine's events commit in its order")
			for i, id := range ids {
				want := ev(fmt.Sprintf("g%d", g), i)
				require.Equal(t, row{Stream: want.Stream, Data: want.Data}, stored[id])
			}
		}
	})

	t.Run("EnqueueOrderAndNullType", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) { c.MaxBatchEvents = 5; c.MaxDelay = -1 })
		bb.signals.Committed.Init()
		for i := range 50 {
			e := ev("s", i)
			if i%2 == 0 {
				e.Type = "t"
			}
			require.NoError(t, b.Enqueue([]Event{e}))
		}
		require.NoError(t, b.Flush(context.Background()))
		// Delivery order: by commit, then by id within a transaction.
		var datas []string
		var types []*string
		rs, err := bb.pool.Query(context.Background(), `SELECT e.data, e.event FROM streamer.events e
            JOIN streamer.commits c USING (txid) ORDER BY c.seq, e.id`)
		require.NoError(t, err)
		for rs.Next() {
			var d string
			var typ *string
			require.NoError(t, rs.Scan(&d, &typ))
			datas, types = append(datas, d), append(types, typ)
		}
		require.NoError(t, rs.Err())
		require.Len(t, datas, 50)
		for i, d := range datas {
			require.Equal(t, ev("s", i).Data, d, "committed in enqueue order")
			if i%2 == 0 {
				require.Equal(t, "t", *types[i])
			} else {
				require.Nil(t, types[i])
			}
		}
		n := 0
		for n < 50 {
			got := bb.signals.Committed.WaitOrTimeout(t)
			require.LessOrEqual(t, got, 5)
			n += got
		}
	})

	t.Run("RuleBrokenInGo", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, nil)
		_, err := b.Publish(context.Background(), []Event{ev("ok", 0), {Stream: "bad stream", Data: "x"}})
		var re *RuleError
		require.ErrorAs(t, err, &re)
		require.Equal(t, 1, re.Index)
		require.Equal(t, "stream", re.Field)
		require.Equal(t, "stream_name_rule", re.Rule)
		require.Empty(t, rows(t, bb.pool))
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b, _ := setup(t, nil)
		ids, err := b.Publish(context.Background(), nil)
		require.NoError(t, err)
		require.Empty(t, ids)
	})
}

// TestCallersBack: once the callers a batch answered are queued again, the
// next batch leaves without waiting out MaxDelay; when one of them stays
// away, MaxDelay still bounds the wait, and the expectation is reset.
func TestCallersBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// round starts callers Publish calls, waits until they are queued and,
	// with flush, calls Flush; it returns the reason the batch was taken.
	round := func(t *testing.T, b *Batcher, bb *bundle, callers int, flush bool) string {
		t.Helper()
		results := make([]<-chan result, callers)
		for i := range results {
			results[i] = publishAsync(b, ctx, []Event{ev("s", i)})
		}
		for range callers {
			bb.signals.Enqueued.WaitOrTimeout(t)
		}
		if flush {
			require.NoError(t, b.Flush(ctx))
		}
		reason := bb.signals.Taken.WaitOrTimeout(t)
		for _, r := range results {
			require.NoError(t, waitResult(t, r).err)
		}
		return reason
	}

	type step struct {
		callers int
		flush   bool
		want    string // the reason the batch is taken
	}
	for _, tc := range []struct {
		name     string
		maxDelay time.Duration
		steps    []step
	}{
		// MaxDelay is an hour: only Flush or the callers' return sends a batch.
		{"ClosedLoop", time.Hour, []step{{4, true, "flush"}, {4, false, "callers"}, {4, false, "callers"}}},
		// Three of the four come back: the batch waits MaxDelay for the
		// fourth, then goes, and three callers are expected next time.
		{"OneCallerStaysAway", 300 * time.Millisecond, []step{{4, true, "flush"}, {3, false, "delay"}, {3, false, "callers"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, bb := setup(t, func(c *Config, _ *Batcher) {
				c.MaxDelay = tc.maxDelay
				c.TestSignals.Enqueued.Init()
				c.TestSignals.Taken.Init()
			})
			published := 0
			for _, st := range tc.steps {
				require.Equal(t, st.want, round(t, b, bb, st.callers, st.flush))
				published += st.callers
			}
			require.Len(t, rows(t, bb.pool), published)
		})
	}

	// Enqueue has no caller waiting, so nobody is expected back after it:
	// the second batch still goes on Flush (the callers rule, were it
	// counted, would be named first).
	t.Run("EnqueueIsNotExpectedBack", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) {
			c.MaxDelay = time.Hour
			c.TestSignals.Taken.Init()
		})
		require.NoError(t, b.Enqueue([]Event{ev("s", 0)}))
		require.NoError(t, b.Flush(ctx))
		require.Equal(t, "flush", bb.signals.Taken.WaitOrTimeout(t))
		require.NoError(t, b.Enqueue([]Event{ev("s", 1)}))
		require.NoError(t, b.Flush(ctx))
		require.Equal(t, "flush", bb.signals.Taken.WaitOrTimeout(t))
		require.Len(t, rows(t, bb.pool), 2)
	})
}

// TestRejectedUnitFailsAlone has the database refuse one unit of a batch
// (a rule Validate does not know, added for the test) and checks that only
// that unit fails, naming the rule, and that the others commit.
func TestRejectedUnitFailsAlone(t *testing.T) {
	t.Parallel()
	b, bb := setup(t, func(c *Config, _ *Batcher) { c.MaxDelay = time.Hour })
	bb.signals.Enqueued.Init()
	_, err := bb.pool.Exec(context.Background(),
		"ALTER TABLE streamer.events ADD CONSTRAINT test_poison_rule CHECK (data <> 'poison')")
	require.NoError(t, err)

	const n = 9
	for i := range n {
		e := ev("s", i)
		if i == 5 {
			e.Data = "poison"
		}
		require.NoError(t, b.Enqueue([]Event{e}))
	}
	sync := publishAsync(b, context.Background(), []Event{ev("sync", 0)})
	for range n + 1 {
		bb.signals.Enqueued.WaitOrTimeout(t)
	}
	require.NoError(t, b.Flush(context.Background()))

	require.Error(t, bb.signals.Rejected.WaitOrTimeout(t))
	f := <-bb.failures
	require.Equal(t, []Event{{Stream: "s", Data: "poison"}}, f.Events)
	var re *RuleError
	require.ErrorAs(t, f.Err, &re)
	require.Equal(t, "test_poison_rule", re.Rule)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, f.Err, &pgErr)
	require.Equal(t, "23514", pgErr.Code)

	r := waitResult(t, sync)
	require.NoError(t, r.err)
	stored := rows(t, bb.pool)
	require.Len(t, stored, n)
	require.Contains(t, stored, r.ids[0])
	require.Len(t, bb.failures, 0)
}

func TestRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The batch's backend is terminated while its COMMIT waits for the
	// commit-order lock: the transaction dies, the batch is retried, and
	// every event is stored once.
	t.Run("BackendKilledDuringCommit", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, nil)
		release := pgtest.HoldCommitLock(t, bb.pool)
		res := publishAsync(b, ctx, []Event{ev("s", 0), ev("s", 1)})
		pid := bb.signals.Committing.WaitOrTimeout(t)
		waitForLockWait(t, bb.pool, pid)
		_, err := pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
		require.NoError(t, err)
		require.Equal(t, "aborted", bb.signals.Resolved.WaitOrTimeout(t))
		// The outcome lookup may first find the killed backend still in
		// progress (and back off); then the commit's own error follows.
		var pgErr *pgconn.PgError
		for {
			err := bb.signals.Backoff.WaitOrTimeout(t)
			if errors.Is(err, errInProgress) {
				continue
			}
			require.ErrorAs(t, err, &pgErr)
			break
		}
		require.Equal(t, "57P01", pgErr.Code)
		release()

		r := waitResult(t, res)
		require.NoError(t, r.err)
		stored := rows(t, bb.pool)
		require.Len(t, stored, 2)
		require.Equal(t, "s-0", stored[r.ids[0]].Data)
		require.Equal(t, "s-1", stored[r.ids[1]].Data)
	})

	// The COMMIT succeeds but its acknowledgement is lost: the batch is
	// found committed and not sent again.
	t.Run("AckLost", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(_ *Config, b *Batcher) {
			b.commit = func(ctx context.Context, conn *pgx.Conn) error {
				if err := commitTx(ctx, conn); err != nil {
					return err
				}
				return io.ErrUnexpectedEOF
			}
		})
		ids, err := b.Publish(ctx, []Event{ev("s", 0), ev("s", 1)})
		require.NoError(t, err)
		require.Equal(t, "committed", bb.signals.Resolved.WaitOrTimeout(t))
		stored := rows(t, bb.pool)
		require.Len(t, stored, 2, "not duplicated")
		require.Equal(t, "s-0", stored[ids[0]].Data)
		require.Equal(t, "s-1", stored[ids[1]].Data)
		bb.signals.Backoff.RequireEmpty(t)
	})

	// The backend is terminated between the INSERT and the COMMIT.
	t.Run("BackendKilledBeforeCommit", func(t *testing.T) {
		t.Parallel()
		var killed sync.Once
		b, bb := setup(t, func(_ *Config, b *Batcher) {
			b.commit = func(ctx context.Context, conn *pgx.Conn) error {
				killed.Do(func() {
					_, err := pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(conn.PgConn().PID()))
					require.NoError(t, err)
				})
				return commitTx(ctx, conn)
			}
		})
		ids, err := b.Publish(ctx, []Event{ev("s", 0)})
		require.NoError(t, err)
		require.Equal(t, "aborted", bb.signals.Resolved.WaitOrTimeout(t))
		stored := rows(t, bb.pool)
		require.Len(t, stored, 1)
		require.Equal(t, "s-0", stored[ids[0]].Data)
	})

	// COMMIT fails without reaching the server, the transaction still
	// open: the batcher closes the connection, learns that the
	// transaction aborted, and retries.
	t.Run("CommitNeverSent", func(t *testing.T) {
		t.Parallel()
		var failed sync.Once
		b, bb := setup(t, func(_ *Config, b *Batcher) {
			b.commit = func(ctx context.Context, conn *pgx.Conn) error {
				err := error(nil)
				failed.Do(func() { err = errors.New("injected: network down") })
				if err != nil {
					return err
				}
				return commitTx(ctx, conn)
			}
		})
		ids, err := b.Publish(ctx, []Event{ev("s", 0)})
		require.NoError(t, err)
		require.Equal(t, "aborted", bb.signals.Resolved.WaitOrTimeout(t))
		require.Len(t, rows(t, bb.pool), 1)
		require.Len(t, ids, 1)
	})

	// A serialization failure is retried.
	t.Run("SerializationFailure", func(t *testing.T) {
		t.Parallel()
		var failed sync.Once
		b, bb := setup(t, func(_ *Config, b *Batcher) {
			b.commit = func(ctx context.Context, conn *pgx.Conn) error {
				var err error
				failed.Do(func() {
					_, err = conn.Exec(ctx, "ROLLBACK")
					require.NoError(t, err)
					err = &pgconn.PgError{Code: "40001", Message: "injected"}
				})
				if err != nil {
					return err
				}
				return commitTx(ctx, conn)
			}
		})
		_, err := b.Publish(ctx, []Event{ev("s", 0)})
		require.NoError(t, err)
		require.Equal(t, "aborted", bb.signals.Resolved.WaitOrTimeout(t))
		var pgErr *pgconn.PgError
		require.ErrorAs(t, bb.signals.Backoff.WaitOrTimeout(t), &pgErr)
		require.Equal(t, "40001", pgErr.Code)
		require.Len(t, rows(t, bb.pool), 1)
	})
}

func TestBackpressureAndCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("QueueFull", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) { c.QueueEvents = 3; c.MaxInFlight = 1 })
		release := pgtest.HoldCommitLock(t, bb.pool)
		inFlight := publishAsync(b, ctx, []Event{ev("s", 0)})
		bb.signals.Committing.WaitOrTimeout(t) // taken: the queue is empty again
		require.NoError(t, b.Enqueue([]Event{ev("s", 1), ev("s", 2)}))
		require.NoError(t, b.Enqueue([]Event{ev("s", 3)}))
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 4)}), ErrFull)
		_, err := b.Publish(ctx, []Event{ev("s", 4)})
		require.ErrorIs(t, err, ErrFull)
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 5), ev("s", 6), ev("s", 7), ev("s", 8)}), ErrTooLarge)
		release()
		require.NoError(t, waitResult(t, inFlight).err)
		require.NoError(t, b.Flush(ctx))
		require.Len(t, rows(t, bb.pool), 4)
	})

	// A caller whose context ends while its events wait in the queue gets
	// the context's error at once, and its events are never published.
	t.Run("CancelWhileQueued", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, nil)
		release := pgtest.HoldCommitLock(t, bb.pool)
		first := publishAsync(b, ctx, []Event{ev("first", 0)})
		bb.signals.Committing.WaitOrTimeout(t)

		cctx, cancel := context.WithCancel(ctx)
		second := publishAsync(b, cctx, []Event{ev("second", 0)})
		cancel()
		r := waitResult(t, second)
		require.ErrorIs(t, r.err, context.Canceled)
		require.NotErrorIs(t, r.err, ErrOutcomeUnknown)

		release()
		require.NoError(t, waitResult(t, first).err)
		require.NoError(t, b.Flush(ctx))
		stored := rows(t, bb.pool)
		require.Len(t, stored, 1)
	})

	// A caller whose context ends while its batch is committing returns
	// at once, told that the outcome is unknown; here the batch commits.
	t.Run("CancelWhileCommitting", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, nil)
		release := pgtest.HoldCommitLock(t, bb.pool)
		cctx, cancel := context.WithCancel(ctx)
		res := publishAsync(b, cctx, []Event{ev("s", 0)})
		bb.signals.Committing.WaitOrTimeout(t)
		cancel()
		r := waitResult(t, res)
		require.ErrorIs(t, r.err, ErrOutcomeUnknown)
		require.ErrorIs(t, r.err, context.Canceled)
		release()
		require.NoError(t, b.Flush(ctx))
		require.Len(t, rows(t, bb.pool), 1)
	})
}

// TestLifecycle runs the shared lifecycle stress test on a real Batcher.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	startstoptest.Stress(t, New(Config{Pool: pgtest.NewPool(t)}))
}

func TestClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DrainsEverythingEnqueued", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) { c.MaxDelay = time.Hour; c.MaxBatchEvents = 100 })
		for i := range 1000 {
			require.NoError(t, b.Enqueue([]Event{ev("s", i)}))
		}
		require.NoError(t, b.Close(ctx))
		require.Len(t, rows(t, bb.pool), 1000)
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 0)}), ErrClosed)
		_, err := b.Publish(ctx, []Event{ev("s", 0)})
		require.ErrorIs(t, err, ErrClosed)
		require.NoError(t, b.Close(ctx), "twice")
		b.Stop()
	})

	// Close's deadline passes while a batch is stuck in COMMIT: it
	// returns, reporting the stuck batch as unknown and the queued events
	// as not sent.
	t.Run("DeadlineReportsUndelivered", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, func(c *Config, _ *Batcher) { c.MaxBatchEvents = 2 })
		pgtest.HoldCommitLock(t, bb.pool)
		require.NoError(t, b.Enqueue([]Event{ev("s", 0), ev("s", 1)}))
		bb.signals.Committing.WaitOrTimeout(t)
		require.NoError(t, b.Enqueue([]Event{ev("s", 2)}))
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := b.Close(cctx)
		var ue *UndeliveredError
		require.ErrorAs(t, err, &ue)
		require.Len(t, ue.Failures, 2)
		for _, f := range ue.Failures {
			if len(f.Events) == 2 { // stuck in COMMIT
				require.ErrorIs(t, f.Err, ErrOutcomeUnknown)
			} else { // queued, or waiting for the batch before to commit
				require.Equal(t, []Event{ev("s", 2)}, f.Events)
				require.ErrorIs(t, f.Err, ErrClosed)
			}
		}
	})

	t.Run("StopBeforeStartAndTwice", func(t *testing.T) {
		t.Parallel()
		b := New(Config{})
		b.Stop()
		b.Stop()
		require.NoError(t, b.Close(ctx))
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 0)}), ErrClosed)
	})

	// Close and Stop end a run, not the Batcher: Start starts it again,
	// and cancelling Start's context ends the run like Stop.
	t.Run("RestartAfterCloseStopAndCancel", func(t *testing.T) {
		t.Parallel()
		b, bb := setup(t, nil)
		publish := func(i int) {
			t.Helper()
			_, err := b.Publish(ctx, []Event{ev("s", i)})
			require.NoError(t, err)
		}
		publish(0)
		require.NoError(t, b.Close(ctx))
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 0)}), ErrClosed)

		require.NoError(t, b.Start(ctx))
		publish(1)
		b.Stop()
		_, err := b.Publish(ctx, []Event{ev("s", 0)})
		require.ErrorIs(t, err, ErrClosed)

		cctx, cancel := context.WithCancel(ctx)
		require.NoError(t, b.Start(cctx))
		publish(2)
		cancel()
		<-b.Stopped()
		require.ErrorIs(t, b.Enqueue([]Event{ev("s", 0)}), ErrClosed)

		require.NoError(t, b.Start(ctx))
		publish(3)
		require.Len(t, rows(t, bb.pool), 4)
	})

	t.Run("ManyCycles", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.NewPool(t)
		for i := range 20 {
			b := New(Config{Pool: pool})
			require.NoError(t, b.Start(ctx))
			require.NoError(t, b.Enqueue([]Event{ev("s", i)}))
			if i%2 == 0 {
				b.Stop()
			} else {
				require.NoError(t, b.Close(ctx))
			}
			b.Stop()
		}
	})

	t.Run("BadDSNFailsStart", func(t *testing.T) {
		t.Parallel()
		cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
		require.NoError(t, err)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		defer pool.Close()
		b := New(Config{Pool: pool})
		require.Error(t, b.Start(ctx))
		b.Stop()
	})
}

// TestOrderKeptAcrossRetries fails some COMMITs while later batches are
// already inserted and waiting: delivery order (commit, then id) is still
// the order of Enqueue.
func TestOrderKeptAcrossRetries(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	b, bb := setup(t, func(c *Config, b *Batcher) {
		c.MaxBatchEvents = 3
		c.MaxDelay = -1
		b.commit = func(ctx context.Context, conn *pgx.Conn) error {
			mu.Lock()
			calls++
			fail := calls == 1 || calls == 4
			mu.Unlock()
			if fail {
				if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
					return err
				}
				return &pgconn.PgError{Code: "40P01", Message: "injected deadlock"}
			}
			return commitTx(ctx, conn)
		}
	})
	const n = 40
	for i := range n {
		require.NoError(t, b.Enqueue([]Event{ev("s", i)}))
	}
	require.NoError(t, b.Flush(context.Background()))
	require.Error(t, bb.signals.Backoff.WaitOrTimeout(t))
	require.Error(t, bb.signals.Backoff.WaitOrTimeout(t))

	rs, err := bb.pool.Query(context.Background(), `SELECT e.data FROM streamer.events e
        JOIN streamer.commits c USING (txid) ORDER BY c.seq, e.id`)
	require.NoError(t, err)
	datas, err := pgx.CollectRows(rs, pgx.RowTo[string])
	require.NoError(t, err)
	want := make([]string, n)
	for i := range want {
		want[i] = ev("s", i).Data
	}
	require.Equal(t, want, datas)
}
