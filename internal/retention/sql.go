package retention

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/streamer-dev/streamer/migrations"
)

// The service lock: a session-level advisory lock that a pass holds while it
// prunes, so that of several servers on one database one prunes at a time and
// the others skip their pass. The keys are listed once, in package migrations.
const (
	LockClassID int32 = migrations.LockClass
	LockObjID   int32 = migrations.RetentionLockID
)

const (
	tryLockSQL = `SELECT pg_try_advisory_lock($1, $2)`
	unlockSQL  = `SELECT pg_advisory_unlock($1, $2)`
	// stepSQL prunes one step; $1 is the retention in microseconds, so that
	// the cutoff comes from the database's clock, the one committed_at uses.
	stepSQL = `SELECT pruned_events, pruned_commits, more
		FROM streamer.prune_step(now() - $1::bigint * interval '1 microsecond', $2)`
	// HorizonSQL reads the retention horizon: the newest position pruned
	// ((0, 0) before any prune). A reader that must detect gaps selects it in
	// the same statement as the events it reads (for example as a CTE), so
	// that both come from one snapshot: events after a cursor c were pruned
	// iff c < (seq, id).
	HorizonSQL = `SELECT seq, id FROM streamer.pruned`
)

// State is the retention state of a database.
type State struct {
	// PrunedSeq, PrunedID: the newest position pruned; every event at or
	// before it is gone. (0, 0) before any prune.
	PrunedSeq, PrunedID int64
	// OldestSeq, OldestID: the position of the oldest event still stored;
	// HasOldest is false when there is none.
	OldestSeq, OldestID int64
	HasOldest           bool
}

// Querier is the part of a pgx pool, connection or transaction ReadState
// uses.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadState reads the retention state in one statement
// (streamer.retention_state()).
func ReadState(ctx context.Context, q Querier) (State, error) {
	var (
		s                   State
		oldestSeq, oldestID *int64
	)
	err := q.QueryRow(ctx, `SELECT pruned_seq, pruned_id, oldest_seq, oldest_id FROM streamer.retention_state()`).
		Scan(&s.PrunedSeq, &s.PrunedID, &oldestSeq, &oldestID)
	if err != nil {
		return State{}, fmt.Errorf("read retention state: %w", err)
	}
	if oldestSeq != nil && oldestID != nil {
		s.OldestSeq, s.OldestID, s.HasOldest = *oldestSeq, *oldestID, true
	}
	return s, nil
}
