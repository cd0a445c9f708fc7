// Package silence makes PostgreSQL end a session that holds something for
// others (a session-level advisory lock) once it has gone silent: its server
// froze, or lost the connection without PostgreSQL seeing a FIN or RST (a
// partition, a dead host, a dropped NAT entry). Without it the backend
// waits until TCP keepalive ends it, two hours by default, and keeps what
// it holds.
//
// # Invariants
//
//   - [Bound] sets idle_in_transaction_session_timeout on every PostgreSQL
//     and idle_session_timeout where it exists (14 and later), both to the
//     same value, for the session (not the transaction), in one statement.
//   - A session waiting for a lock or running a statement is not idle:
//     only a session that PostgreSQL hears nothing from is ended.
package silence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
