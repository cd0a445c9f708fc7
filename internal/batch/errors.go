package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrFull is returned at once when the queue is at its bound: the
	// events were not accepted and the caller should retry later.
	ErrFull = errors.New("streamer: publish queue is full")

	// ErrClosed is returned when the batcher is not accepting events
	// (closing, closed, or never started), and for events that Close or
	// Stop cut off before they were sent: those were not published.
	ErrClosed = errors.New("streamer: publisher is closed")

	// ErrTooLarge is returned for a group of events that exceeds the
	// queue's bound on its own and so could never be accepted.
	ErrTooLarge = errors.New("streamer: events exceed the publish queue's bound")

	// ErrOutcomeUnknown means the events were being committed when the
	// caller stopped waiting (its context ended, or Close's deadline
	// passed): they may or may not have been published.
	ErrOutcomeUnknown = errors.New("streamer: outcome unknown: the events were being committed and may have been published")

	// ErrReadOnly is returned at once when the database refuses writes
	// (SQLSTATE 25006: a standby after a failover, or
	// default_transaction_read_only): nothing was published; retry once a
	// writable primary is back.
	ErrReadOnly = errors.New("streamer: the database is read-only; nothing was published")
)

// Failure is a group of events that was not published, and why.
type Failure struct {
	Events []Event
	Err    error
}

// UndeliveredError is Close's report of the enqueued events it could not
// deliver before its deadline. Each failure's Err wraps ErrClosed (not
// published) or ErrOutcomeUnknown.
type UndeliveredError struct {
	Failures []Failure
}

func (e *UndeliveredError) Error() string {
	n, unknown := 0, 0
	for _, f := range e.Failures {
		n += len(f.Events)
		if errors.Is(f.Err, ErrOutcomeUnknown) {
			unknown += len(f.Events)
		}
	}
	return fmt.Sprintf("streamer: %d enqueued events not delivered at close (%d of them with unknown outcome)", n, unknown)
}

// class is what a failed attempt means for the events in it.
type class int

const (
	// transient: retry the same batch after a backoff.
	transient class = iota
	// rejected: the data broke a rule; bisect to find the events that did.
	rejected
	// fatal: retrying cannot help (for example the schema is missing);
	// fail every event of the batch with the error.
	fatal
	// readOnly: the database refuses writes; fail the batch at once with
	// ErrReadOnly rather than retry into the caller's deadline.
	readOnly
)

// classify decides what a failed attempt's error means. It is called only
// once the transaction is known to have rolled back.
//
// SQLSTATE classes: 08 connection exception, 40 transaction rollback
// (40001 serialization failure, 40P01 deadlock), 53 insufficient resources
// (53300 too many connections), 55 object not in prerequisite state
// (55P03 lock not available), 57 operator intervention (57P01 admin
// shutdown, 57014 query canceled: the attempt timeout or a
// statement_timeout), 58 system error and 25P03 idle-in-transaction timeout
// are transient; 25006 read-only SQL transaction is readOnly. 22 data exception, 23 integrity constraint violation (23514
// CHECK) and 54 program limit exceeded depend on the rows, so they are
// rejections. Anything else from the server is fatal. An error without a
// SQLSTATE is a network or client failure and is transient.
func classify(err error) class {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return transient
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "55", "57", "58":
		return transient
	case "22", "23", "54":
		return rejected
	}
	switch pgErr.Code {
	case "25P03":
		return transient
	case "25006":
		return readOnly
	}
	return fatal
}

// causeOr returns ctx's cause, or err when ctx has not ended.
func causeOr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}
