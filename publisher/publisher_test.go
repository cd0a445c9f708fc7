package publisher_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
	"github.com/streamer-dev/streamer/publisher"
)

// setup returns a Publisher on a fresh database, closed at cleanup, and
// the pool it commits on.
func setup(t *testing.T, cfg publisher.Config) (*publisher.Publisher, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	p, err := publisher.New(context.Background(), pool, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, pool
}

// stored returns stream and data of every event by id, and how many rows
// there are.
func stored(t *testing.T, pool *pgxpool.Pool) map[publisher.ID][2]string {
	t.Helper()
	got := map[publisher.ID][2]string{}
	rs, err := pool.Query(context.Background(), "SELECT id, stream, data FROM streamer.events")
	require.NoError(t, err)
	for rs.Next() {
		var id publisher.ID
		var s, d string
		require.NoError(t, rs.Scan(&id, &s, &d))
		got[id] = [2]string{s, d}
	}
	require.NoError(t, rs.Err())
	return got
}

// waitCommitBlocked waits until some backend waits for the commit lock.
func waitCommitBlocked(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted AND classid = $1 AND objid = $2`, migrations.LockClass, migrations.CommitLockID).Scan(&n)
		return err == nil && n > 0
	}, testsignal.Timeout, 5*time.Millisecond)
}

// Acceptance: 100 goroutines x 100 events through Publish; every event is
// committed exactly once and each returned id is its row's.
func TestPublishConcurrent(t *testing.T) {
	t.Parallel()
	p, pool := setup(t, publisher.Config{})
	const goroutines, per = 100, 100
	ids := make([][]publisher.ID, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				id, err := p.Publish(context.Background(), publisher.Event{
					Stream: fmt.Sprintf("g%d", g), Data: fmt.Sprintf("%d/%d", g, i)})
				require.NoError(t, err)
				ids[g] = append(ids[g], id)
			}
		})
	}
	wg.Wait()

	rows := stored(t, pool)
	require.Len(t, rows, goroutines*per, "each event stored exactly once")
	for g := range goroutines {
		for i, id := range ids[g] {
			require.Equal(t, [2]string{fmt.Sprintf("g%d", g), fmt.Sprintf("%d/%d", g, i)}, rows[id])
		}
	}
	var commits int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM streamer.commits").Scan(&commits))
	require.Less(t, commits, goroutines*per, "events shared transactions")
	t.Logf("%d events in %d transactions", goroutines*per, commits)
}

// Acceptance: one bad event in a batch fails alone, naming the rule; the
// others commit. The rule here is one the database has and Go does not
// know, so the database refuses the batch and the Publisher narrows it down.
func TestBadEventFailsAlone(t *testing.T) {
	t.Parallel()
	failures := make(chan publisher.Failure, 10)
	p, pool := setup(t, publisher.Config{
		MaxDelay: time.Hour, // one batch, sent by Flush
		OnError:  func(f publisher.Failure) { failures <- f },
	})
	ctx := context.Background()
	_, err := pool.Exec(ctx, "ALTER TABLE streamer.events ADD CONSTRAINT test_poison_rule CHECK (data <> 'poison')")
	require.NoError(t, err)

	for i := range 10 {
		data := fmt.Sprint(i)
		if i == 4 {
			data = "poison"
		}
		require.NoError(t, p.Enqueue(publisher.Event{Stream: "s", Data: data}))
	}
	// Rules Go knows are refused before anything is queued.
	err = p.Enqueue(publisher.Event{Stream: "s", Type: "bad type", Data: "x"})
	var re *publisher.RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "event_type_rule", re.Rule)
	require.Equal(t, "event", re.Field)

	require.NoError(t, p.Flush(ctx))
	require.Len(t, failures, 1)
	f := <-failures
	require.Equal(t, "poison", f.Event.Data)
	require.ErrorAs(t, f.Err, &re)
	require.Equal(t, "test_poison_rule", re.Rule)
	require.Contains(t, f.Err.Error(), "test_poison_rule")
	require.Len(t, stored(t, pool), 9)
}

// Acceptance: a full queue makes Enqueue fail at once with ErrFull.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	p, pool := setup(t, publisher.Config{QueueEvents: 2})
	ctx := context.Background()
	release := pgtest.HoldCommitLock(t, pool)
	require.NoError(t, p.Enqueue(publisher.Event{Stream: "s", Data: "0"}))
	waitCommitBlocked(t, pool) // the first batch is stuck in COMMIT
	// The queue holds 2 events, and one more batch may be taken to wait
	// behind the stuck one; then the queue fills up.
	accepted := 1
	for {
		err := p.Enqueue(publisher.Event{Stream: "s", Data: fmt.Sprint(accepted)})
		if err != nil {
			require.ErrorIs(t, err, publisher.ErrFull)
			break
		}
		accepted++
		require.Less(t, accepted, 1000, "the queue never filled up")
	}
	release()
	require.NoError(t, p.Flush(ctx))
	require.Len(t, stored(t, pool), accepted)
}

// New's context bounds only New: the Publisher keeps running after it ends.
func TestOutlivesNewContext(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := publisher.New(ctx, pool, publisher.Config{})
	require.NoError(t, err)
	cancel()
	id, err := p.Publish(context.Background(), publisher.Event{Stream: "s", Data: "after"})
	require.NoError(t, err)
	require.NotZero(t, id)
	require.NoError(t, p.Close(context.Background()))
}

// Acceptance: Close delivers everything enqueued before it.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	p, pool := setup(t, publisher.Config{MaxDelay: time.Hour, MaxBatchEvents: 64})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range 300 {
				require.NoError(t, p.Enqueue(publisher.Event{Stream: "s", Data: fmt.Sprintf("%d/%d", g, i)}))
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.Close(ctx))
	require.Len(t, stored(t, pool), 3000)
	require.ErrorIs(t, p.Enqueue(publisher.Event{Stream: "s", Data: "late"}), publisher.ErrClosed)
}

// Acceptance: a cancelled context returns promptly, whether the event was
// still queued (not published) or being committed (outcome unknown).
func TestCancelledContextReturnsPromptly(t *testing.T) {
	t.Parallel()
	p, pool := setup(t, publisher.Config{})
	release := pgtest.HoldCommitLock(t, pool)
	ctx := context.Background()

	committing, cancelCommitting := context.WithCancel(ctx)
	errs := make(chan error, 2)
	go func() {
		_, err := p.Publish(committing, publisher.Event{Stream: "s", Data: "committing"})
		errs <- err
	}()
	waitCommitBlocked(t, pool)
	queued, cancelQueued := context.WithCancel(ctx)
	go func() {
		_, err := p.Publish(queued, publisher.Event{Stream: "s", Data: "queued"})
		errs <- err
	}()
	cancelQueued()
	cancelCommitting()
	var got []error
	for range 2 {
		got = append(got, testsignal.Receive(t, errs, testsignal.Timeout, "Publish did not return after its context was cancelled"))
	}
	for _, err := range got {
		require.ErrorIs(t, err, context.Canceled)
	}
	release()
	require.NoError(t, p.Flush(ctx))
	rows := stored(t, pool)
	for _, r := range rows {
		require.NotEqual(t, "queued", r[1], "a caller told 'not published' is never published")
	}
}

// Acceptance: events published with PublishTx in a rolled-back transaction
// never appear; in a committed one they do, with the returned ids.
func TestPublishTx(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = publisher.PublishTx(ctx, tx, publisher.Event{Stream: "s", Data: "rolled back"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	ids, err := publisher.PublishTx(ctx, tx,
		publisher.Event{Stream: "s", Data: "a"}, publisher.Event{Stream: "t", Type: "x", Data: "b"})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	rows := stored(t, pool)
	require.Len(t, rows, 2)
	require.Equal(t, [2]string{"s", "a"}, rows[ids[0]])
	require.Equal(t, [2]string{"t", "b"}, rows[ids[1]])
	var commits int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM streamer.commits").Scan(&commits))
	require.Equal(t, 1, commits, "the rolled-back transaction left no commit")

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = publisher.PublishTx(ctx, tx, publisher.Event{Stream: "", Data: "x"})
	var re *publisher.RuleError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "stream_name_rule", re.Rule)
}
