package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamer-dev/streamer/internal/backoff"
	"github.com/streamer-dev/streamer/internal/silence"
)

// InsertSQL is the statement Insert and the Batcher run, with the text
// arrays of streams, types (empty for none), data and audiences (each an
// array literal, empty for none: unnest cannot take an array of arrays of
// different lengths) as $1-$4; exported for
// the publish benchmarks. It inserts a batch with one statement, so the
// statement-level NOTIFY trigger fires once per batch. WITH ORDINALITY ... ORDER BY feeds
// the rows to the INSERT in array order, and identity values are drawn from
// the sequence one row at a time as the INSERT receives them, so the ids in
// ascending order belong to the events in array order. Returning them as
// one sorted array (rather than relying on the order of RETURNING rows)
// makes that mapping independent of how rows come back.
const InsertSQL = `WITH ins AS (
    INSERT INTO streamer.events (stream, event, data, audience)
    SELECT u.stream, nullif(u.event, ''), u.data, nullif(u.audience, '')::text[]
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(stream, event, data, audience, n)
    ORDER BY u.n
    RETURNING id
)
SELECT coalesce(array_agg(id ORDER BY id), '{}'), pg_current_xact_id()::text::bigint FROM ins`

// Querier runs a query that returns one row; pgx.Tx, *pgx.Conn and
// *pgxpool.Pool implement it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Insert validates events and inserts them with one statement on q,
// typically inside the caller's transaction, returning their ids in order.
// A rule broken in Go or refused by the database is a *RuleError.
func Insert(ctx context.Context, q Querier, events []Event) ([]int64, error) {
	if len(events) == 0 {
		return []int64{}, nil
	}
	for i, e := range events {
		if re := Validate(i, e); re != nil {
			return nil, re
		}
	}
	streams, types, data, audiences := columns(events)
	var ids []int64
	var txid int64
	if err := q.QueryRow(ctx, InsertSQL, streams, types, data, audiences).Scan(&ids, &txid); err != nil {
		if classify(err) == rejected {
			return nil, rejection(err)
		}
		return nil, err
	}
	if len(ids) != len(events) {
		return nil, fmt.Errorf("batch: inserted %d rows for %d events", len(ids), len(events))
	}
	return ids, nil
}

func columns(events []Event) (streams, types, data, audiences []string) {
	streams = make([]string, len(events))
	types = make([]string, len(events))
	data = make([]string, len(events))
	audiences = make([]string, len(events))
	for i, e := range events {
		streams[i], types[i], data[i] = e.Stream, e.Type, e.Data
		if e.Audience != nil {
			audiences[i] = arrayLiteral(e.Audience)
		}
	}
	return streams, types, data, audiences
}

// arrayLiteral writes values as a PostgreSQL array literal: every element
// double-quoted, with backslash and double quote escaped, so that no value
// (commas, braces, spaces, "NULL") is read as anything but itself.
func arrayLiteral(values []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(v); j++ {
			if v[j] == '"' || v[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// commitUnits commits units as one transaction, retrying transient
// failures and bisecting rejections, and resolves every unit. Its COMMITs
// wait until prev is closed (the batch before is resolved).
func (b *Batcher) commitUnits(ctx context.Context, units []*unit, prev <-chan struct{}) {
	for attempt := 0; ; {
		// Units whose waiter gave up while no COMMIT was under way are
		// dropped: their callers were told they were not published.
		live := make([]*unit, 0, len(units))
		for _, u := range units {
			if u.flight.Load() == abandoned {
				b.resolve(u, nil, context.Canceled)
			} else {
				live = append(live, u)
			}
		}
		units = live
		if len(units) == 0 {
			return
		}

		ids, unknown, err := b.attempt(ctx, units, prev)
		switch {
		case err == nil:
			// Counted before the callers hear of it, so that a caller
			// that got its ids sees the count moved.
			b.cfg.Metrics.Published(len(ids))
			if b.cfg.OnCommit != nil {
				b.cfg.OnCommit()
			}
			off := 0
			for _, u := range units {
				n := len(u.events)
				b.resolve(u, ids[off:off+n:off+n], nil)
				off += n
			}
			b.signals.Committed.Signal(off)
			return
		case unknown:
			b.log.Error().Err(err).Int("units", len(units)).Msg("batch: outcome of COMMIT unknown")
			b.resolveAll(units, err)
			return
		case errors.Is(err, errAbandoned):
			continue // rolled back; again without the abandoned units
		}
		for _, u := range units {
			u.flight.CompareAndSwap(sending, idle)
		}
		if ctx.Err() != nil {
			b.resolveAll(units, fmt.Errorf("%w: not committed (%w)", ErrClosed, context.Cause(ctx)))
			return
		}

		switch classify(err) {
		case rejected:
			b.signals.Rejected.Signal(err)
			if len(units) == 1 {
				b.resolve(units[0], nil, rejection(err))
				return
			}
			b.log.Debug().Err(err).Int("units", len(units)).Msg("batch: rows refused; bisecting")
			mid := len(units) / 2
			b.commitUnits(ctx, units[:mid], prev)
			b.commitUnits(ctx, units[mid:], prev)
			return
		case fatal:
			b.log.Error().Err(err).Int("units", len(units)).Msg("batch: publish failed")
			b.resolveAll(units, err)
			return
		case readOnly:
			b.log.Warn().Err(err).Int("units", len(units)).Msg("batch: database is read-only; publish refused")
			b.resolveAll(units, fmt.Errorf("%w (%w)", ErrReadOnly, err))
			return
		}

		if silence.DropOnTimeout(b.cfg.Pool, err) {
			b.log.Warn().Dur("attempt_timeout", b.cfg.AttemptTimeout).Msg("batch: an attempt timed out; closing the publish pool's connections")
		}
		wait := backoff.Delay(attempt, b.cfg.MinBackoff, b.cfg.MaxBackoff)
		attempt++
		b.log.Warn().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("batch: commit failed; retrying")
		b.signals.Backoff.Signal(err)
		if !backoff.Sleep(ctx, wait) {
			b.resolveAll(units, fmt.Errorf("%w: not committed (%w)", ErrClosed, context.Cause(ctx)))
			return
		}
	}
}

// errAbandoned: a unit's waiter gave up before COMMIT; the transaction was
// rolled back so that it can be sent again without that unit.
var errAbandoned = errors.New("batch: a waiter gave up before COMMIT")

func (b *Batcher) resolveAll(units []*unit, err error) {
	for _, u := range units {
		b.resolve(u, nil, err)
	}
}

// attempt runs one transaction: BEGIN and the INSERT in one round trip,
// then, once prev is closed, COMMIT. It returns the ids on success. When
// COMMIT fails, its outcome is looked up before anything is retried (see
// resolveCommit); unknown is true when that lookup could not finish.
func (b *Batcher) attempt(ctx context.Context, units []*unit, prev <-chan struct{}) (ids []int64, unknown bool, err error) {
	events := units[0].events
	if len(units) > 1 {
		events = make([]Event, 0, len(units)*len(events))
		for _, u := range units {
			events = append(events, u.events...)
		}
	}
	actx, cancel := context.WithTimeout(ctx, b.cfg.AttemptTimeout)
	defer cancel()
	pc, err := b.cfg.Pool.Acquire(actx)
	if err != nil {
		return nil, false, err
	}
	conn := pc.Conn()

	streams, types, data, audiences := columns(events)
	var txid int64
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	batch.Queue(InsertSQL, streams, types, data, audiences).QueryRow(func(row pgx.Row) error {
		return row.Scan(&ids, &txid)
	})
	err = conn.SendBatch(actx, batch).Close()
	if err == nil && len(ids) != len(events) {
		err = fmt.Errorf("batch: inserted %d rows for %d events", len(ids), len(events))
	}
	if err == nil {
		select {
		case <-prev:
			err = claim(units)
		case <-actx.Done():
			err = fmt.Errorf("batch: waiting for the batch before: %w", context.Cause(actx))
		}
	}
	if err != nil {
		// Nothing is committed. Keep the connection if it can be
		// cleaned; Release destroys one left in a transaction.
		if !conn.IsClosed() {
			_, _ = conn.Exec(actx, "ROLLBACK")
		}
		pc.Release()
		return nil, false, err
	}

	pid := conn.PgConn().PID()
	b.signals.Committing.Signal(pid)
	err = b.commit(actx, conn)
	if err == nil {
		pc.Release()
		return ids, false, nil
	}

	// The COMMIT may or may not have taken effect. Close the connection,
	// so that an open transaction on it ends, and ask the server.
	closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	_ = conn.Close(closeCtx)
	cancelClose()
	pc.Release()
	status, rerr := b.resolveCommit(ctx, txid, pid)
	switch status {
	case "committed":
		return ids, false, nil
	case "aborted":
		return nil, false, err
	}
	return nil, true, fmt.Errorf("%w: COMMIT failed with %w; then %w", ErrOutcomeUnknown, err, rerr)
}

// claim marks units as being committed, unless a waiter gave up: then it
// leaves them all as they were and returns errAbandoned.
func claim(units []*unit) error {
	for i, u := range units {
		if !u.flight.CompareAndSwap(idle, sending) {
			for _, v := range units[:i] {
				v.flight.Store(idle)
			}
			return errAbandoned
		}
	}
	return nil
}

// errRolledBack is a COMMIT that the server answered with ROLLBACK.
var errRolledBack = errors.New("batch: COMMIT rolled back")

// commitTx is the production commitFunc.
func commitTx(ctx context.Context, conn *pgx.Conn) error {
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		return errRolledBack
	}
	return nil
}

var errInProgress = errors.New("batch: interrupted transaction still in progress")

// resolveCommit learns whether transaction txid, whose COMMIT was
// interrupted, committed: pg_xact_status answers "committed", "aborted" or
// "in progress" for a recent transaction. While it is in progress (the old
// backend has not noticed yet that its client left) the backend is
// terminated, if it still runs that transaction, and the question asked
// again after a backoff. It gives up only when ctx ends.
func (b *Batcher) resolveCommit(ctx context.Context, txid int64, pid uint32) (string, error) {
	for attempt := 0; ; attempt++ {
		status, err := b.xactStatus(ctx, txid, pid)
		if err == nil && status != "in progress" {
			b.signals.Resolved.Signal(status)
			return status, nil
		}
		if err == nil {
			err = errInProgress
		}
		b.signals.Backoff.Signal(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt, b.cfg.MinBackoff, b.cfg.MaxBackoff)) {
			return "", fmt.Errorf("outcome lookup cut off (%w) after %w", context.Cause(ctx), err)
		}
	}
}

func (b *Batcher) xactStatus(ctx context.Context, txid int64, pid uint32) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AttemptTimeout)
	defer cancel()
	var status *string
	if err := b.cfg.Pool.QueryRow(ctx, `SELECT pg_xact_status($1::bigint::text::xid8)`, txid).Scan(&status); err != nil {
		return "", err
	}
	if status == nil { // older than the server keeps status for: cannot happen within a retry
		return "unknown", nil
	}
	if *status == "in progress" {
		_, err := b.cfg.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE pid = $1 AND backend_xid::text = ($2::bigint % 4294967296)::text`, int32(pid), txid)
		if err != nil {
			return "", err
		}
	}
	return *status, nil
}
