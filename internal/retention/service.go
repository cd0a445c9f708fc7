package retention

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamer-dev/streamer/internal/silence"
	"github.com/streamer-dev/streamer/internal/startstop"
)

// unlockTimeout bounds releasing the service lock after a pass, which runs
// on a fresh context so that a stopping service still releases it.
const unlockTimeout = 5 * time.Second

// Pass is what one pass did.
type Pass struct {
	Skipped bool // another server held the lock; nothing was done
	Events  int64
	Commits int64
	Steps   int
	Err     error
}

// Service prunes events older than the retention in the background. See the
// package documentation.
type Service struct {
	startstop.Base
	cfg    Config
	pruned atomic.Int64
}

var _ startstop.Service = (*Service)(nil)

// New returns a service that is not running yet.
func New(cfg Config) *Service {
	return &Service{cfg: cfg.withDefaults()}
}

// PrunedEvents returns how many events this service has pruned since it was
// created (for streamer_pruned_events_total).
func (s *Service) PrunedEvents() int64 { return s.pruned.Load() }

// Interval is the time between passes after defaults.
func (s *Service) Interval() time.Duration { return s.cfg.Interval }

// Start starts the background passes: one at once, then one every
// Interval. With Retention 0 it runs nothing and returns nil.
func (s *Service) Start(ctx context.Context) error {
	if s.cfg.Retention == 0 {
		return nil
	}
	if s.cfg.Pool == nil {
		return errors.New("retention: start: Config.Pool is nil")
	}
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	go func() {
		started()
		defer stopped()
		s.run(ctx)
	}()
	return nil
}

func (s *Service) run(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.Interval)
	defer ticker.Stop()
	for {
		p := s.pass(ctx)
		s.report(ctx, p)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (s *Service) report(ctx context.Context, p Pass) {
	log := s.cfg.Logger
	switch {
	case p.Err != nil && ctx.Err() != nil: // stopping: not worth a warning
		log.Debug().Err(p.Err).Msg("retention: pass interrupted")
	case p.Err != nil:
		log.Warn().Err(p.Err).Int64("events", p.Events).Int64("commits", p.Commits).
			Msg("retention: pass failed")
	case p.Events > 0 || p.Commits > 0:
		log.Info().Int64("events", p.Events).Int64("commits", p.Commits).Int("steps", p.Steps).
			Dur("retention", s.cfg.Retention).Msg("retention: pruned")
	}
	if ts := s.cfg.TestSignals; ts != nil {
		ts.PassDone.Signal(p)
	}
}

// pass takes the service lock, if no other server holds it, and runs steps
// until nothing older than the retention is left or ctx is done.
func (s *Service) pass(ctx context.Context) (p Pass) {
	conn, err := s.cfg.Pool.Acquire(ctx)
	if err != nil {
		p.Err = fmt.Errorf("retention: acquire a connection: %w", err)
		return p
	}
	defer conn.Release()

	var locked bool
	lctx, cancel := context.WithTimeout(ctx, s.cfg.SilenceTimeout)
	err = conn.QueryRow(lctx, tryLockSQL, LockClassID, LockObjID).Scan(&locked)
	cancel()
	if err != nil {
		p.Err = fmt.Errorf("retention: take the service lock: %w", err)
		closeConn(conn) // the lock may have been taken after all
		return p
	}
	if !locked {
		p.Skipped = true
		return p
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, err := conn.Exec(uctx, unlockSQL, LockClassID, LockObjID); err != nil {
			closeConn(conn) // closing the session releases the lock
			if p.Err == nil {
				p.Err = fmt.Errorf("retention: release the service lock: %w", err)
			}
			return
		}
		if _, err := silence.Bound(uctx, conn, 0); err != nil {
			closeConn(conn) // the pool's next user would inherit the bound
		}
	}()
	// Holding the lock, the session must not outlive its server's silence.
	bctx, cancel := context.WithTimeout(ctx, s.cfg.SilenceTimeout)
	_, err = silence.Bound(bctx, conn, s.cfg.SilenceTimeout)
	cancel()
	if err != nil {
		p.Err = fmt.Errorf("retention: %w", err)
		return p
	}
	if ts := s.cfg.TestSignals; ts != nil {
		ts.Locked.Signal(struct{}{})
	}

	size := min(firstStepCommits, s.cfg.MaxStepCommits)
	for ctx.Err() == nil {
		began := time.Now()
		events, commits, more, err := s.step(ctx, conn, size)
		took := time.Since(began)
		if f := s.cfg.onStep; f != nil {
			f(began, took, size, events)
		}
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "57014" && ctx.Err() == nil && size > 1 {
				size = max(1, size/4) // statement_timeout: retry much smaller
				continue
			}
			p.Err = err
			return p
		}
		p.Steps++
		p.Events += events
		p.Commits += commits
		if events > 0 {
			s.pruned.Add(events)
			if f := s.cfg.OnPruned; f != nil {
				f(events)
			}
		}
		if !more {
			return p
		}
		size = nextSize(size, took, s.cfg.StepBudget, s.cfg.MaxStepCommits)
		if s.cfg.Rest > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(float64(took) * s.cfg.Rest)):
			}
		}
	}
	return p
}

// nextSize adapts the step size so that a step takes about budget: double
// it while steps take under half the budget, halve it when one takes more.
func nextSize(size int, took, budget time.Duration, maxSize int) int {
	switch {
	case took > budget:
		size /= 2
	case took < budget/2:
		size *= 2
	}
	return max(1, min(size, maxSize))
}

// step runs one streamer.prune_step in its own transaction, cancelled by
// the server after 4×StepBudget.
func (s *Service) step(ctx context.Context, conn *pgxpool.Conn, size int) (events, commits int64, more bool, err error) {
	// PostgreSQL cancels the step after stepTimeout; an answer that has not
	// come SilenceTimeout after that will not come.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.stepTimeout()+s.cfg.SilenceTimeout)
	defer cancel()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, false, fmt.Errorf("retention: begin step: %w", err)
	}
	defer func() { // after Commit, a no-op; bounded, and run even when stopping
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	timeout := strconv.FormatInt(s.cfg.stepTimeout().Milliseconds()+1, 10)
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", timeout); err != nil {
		return 0, 0, false, fmt.Errorf("retention: set the step's statement_timeout: %w", err)
	}
	var n int32
	if err := tx.QueryRow(ctx, stepSQL, s.cfg.Retention.Microseconds(), int32(size)).Scan(&events, &n, &more); err != nil {
		return 0, 0, false, fmt.Errorf("retention: prune step of %d commits: %w", size, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, false, fmt.Errorf("retention: commit step: %w", err)
	}
	return events, int64(n), more, nil
}

// closeConn closes a pooled connection so that the pool discards it.
func closeConn(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	_ = conn.Conn().Close(ctx)
}
