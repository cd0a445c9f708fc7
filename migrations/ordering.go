package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Ordering is how publishing transactions are numbered into the delivery
// order (007_ticks.sql; the argument is in internal/dispatch/doc.go).
type Ordering string

const (
	// Trigger: each publishing transaction numbers itself at COMMIT under
	// a global lock and NOTIFYs (migrations 001-003).
	Trigger Ordering = "trigger"
	// Ticks: publishers only insert; one server at a time numbers what
	// committed since its last tick, every few milliseconds.
	Ticks Ordering = "ticks"
)

// Orderings lists every mode.
var Orderings = []Ordering{Ticks, Trigger}

// ErrUnknownOrdering is wrapped by ParseOrdering's errors.
var ErrUnknownOrdering = errors.New("unknown ordering mode")

// ParseOrdering reads a mode name as STREAMER_ORDERING spells it; "" is
// the zero Ordering (keep the database's mode).
func ParseOrdering(s string) (Ordering, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return "", nil
	}
	for _, o := range Orderings {
		if string(o) == s {
			return o, nil
		}
	}
	return "", fmt.Errorf("%w %q (want %s or %s)", ErrUnknownOrdering, s, Ticks, Trigger)
}

// DefaultOrdering is the mode `streamer migrate` leaves a database in when
// STREAMER_ORDERING is empty: the one it is in (trigger on a new database),
// with the reason to print. A database changes mode only when asked: ticks
// frees publishers from the global commit lock and now meets its latency
// target (p50 5.4-5.7 ms at 1,000 events/s), but adds about 4 ms to every
// delivery, its CPU per delivery at the default 5 ms tick is no better than
// trigger's, and the load tool's other scenarios have not been measured in
// it (docs/benchmarks.md, "Ordering modes"), so it is not yet the default.
func DefaultOrdering(ctx context.Context, q Querier) (Ordering, string, error) {
	mode, err := ReadOrdering(ctx, q)
	if err != nil {
		return "", "", err
	}
	if mode == Ticks {
		return mode, "unchanged: the database is in ticks mode", nil
	}
	return mode, "unchanged; STREAMER_ORDERING=ticks frees publishers from the global commit lock", nil
}

// SetOrdering switches the database to mode (streamer.set_ordering, which
// waits for publishing transactions in flight). It must run outside a
// transaction.
func SetOrdering(ctx context.Context, conn *pgx.Conn, mode Ordering) error {
	var got string
	if err := conn.QueryRow(ctx, "SELECT streamer.set_ordering($1)", string(mode)).Scan(&got); err != nil {
		return fmt.Errorf("set ordering %s: %w", mode, err)
	}
	return nil
}

// Querier is what ReadOrdering needs: a connection, a pool or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadOrdering returns the database's ordering mode.
func ReadOrdering(ctx context.Context, q Querier) (Ordering, error) {
	var mode string
	if err := q.QueryRow(ctx, "SELECT mode FROM streamer.ordering").Scan(&mode); err != nil {
		return "", fmt.Errorf("read ordering mode: %w", err)
	}
	return Ordering(mode), nil
}
