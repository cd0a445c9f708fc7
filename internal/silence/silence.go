// Package silence deals with connections gone silent: the server froze, or
// lost the connection without PostgreSQL seeing a FIN or RST (a partition,
// a dead host, a dropped NAT entry). [Bound] makes PostgreSQL end a session
// that holds something for others (a session-level advisory lock) once it
// has gone silent; without it the backend waits until TCP keepalive ends
// it, two hours by default, and keeps what it holds. [DropOnTimeout] is the
// client's side: a pool whose statement got no answer in time is emptied.
//
// # Invariants
//
//   - [Bound] sets idle_in_transaction_session_timeout on every PostgreSQL
//     and idle_session_timeout where it exists (14 and later), both to the
//     same value, for the session (not the transaction), in one statement.
//   - A session waiting for a lock or running a statement is not idle:
//     only a session that PostgreSQL hears nothing from is ended.
//   - [DropOnTimeout] resets a pool only for an error that is a deadline
//     running out (context.DeadlineExceeded), never for a cancellation.
package silence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DropOnTimeout closes every connection of pool (pgxpool.Pool.Reset; one in
// use closes when it is released) when err is a statement's deadline
// running out, and reports whether it did. A statement with no answer in
// time most likely ran on a connection gone silent, and so, behind the same
// path, did the pool's others: each would cost a timeout of its own to find
// out, and hold a pool slot while pgx drains it (up to 15s).
func DropOnTimeout(pool *pgxpool.Pool, err error) bool {
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	pool.Reset()
	return true
}

// Querier is what Bound needs of a connection (*pgx.Conn, *pgxpool.Conn).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// boundSQL sets both idle timeouts to $1; its second column is NULL where
// PostgreSQL has no idle_session_timeout (before 14).
const boundSQL = `SELECT set_config('idle_in_transaction_session_timeout', $1, false),
	CASE WHEN current_setting('server_version_num')::int >= 140000
	THEN set_config('idle_session_timeout', $1, false) END`

// Bound makes PostgreSQL end the session of q once it has been idle, in a
// transaction or not, for d; d of 0 turns both bounds off again. outside
// reports whether the bound holds outside transactions too (false before
// PostgreSQL 14: there only a session idle inside a transaction is ended).
func Bound(ctx context.Context, q Querier, d time.Duration) (outside bool, err error) {
	var set *string
	if err := q.QueryRow(ctx, boundSQL, fmt.Sprintf("%dms", d.Milliseconds())).Scan(nil, &set); err != nil {
		return false, fmt.Errorf("set the session's idle timeouts: %w", err)
	}
	return set != nil, nil
}
