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

// defaultOrdering is the mode `streamer migrate` leaves a database in when
// STREAMER_ORDERING is empty, with the reason to print: mode is the one it
// is in, applied the migration version it was at before this run
// (AppliedVersion, read before Migrate).
//
// A new database (applied 0: no migration had run) gets ticks. Publishers
// then take no global lock and send no NOTIFY: pgbench single-row
// transactions ran at 0.92-1.86x a plain table's rate, against 0.05-0.53x in
// trigger mode, whose commit-order lock serialises every publishing COMMIT.
// The price is latency: delivery waits for the next tick (p50 5.4-6.0 ms at
// 1,000 events/s, against 1.5 ms in trigger mode), and the order is commit
// order to the tick (docs/benchmarks.md, "Ordering modes").
//
// A database migrated before (including one from a release before 007,
// which was in effect in trigger mode) keeps the mode it is in: switching
// waits for every publisher in flight, and changes the latency its
// subscribers see, so it happens only when asked.
func defaultOrdering(mode Ordering, applied int32) (Ordering, string) {
	switch {
	case applied == 0:
		return Ticks, "new database: publishers take no global lock and send no NOTIFY, " +
			"one server numbers what committed every few ms; STREAMER_ORDERING=trigger numbers each COMMIT itself"
	case mode == Ticks:
		return mode, "unchanged: an existing database keeps its mode"
	default:
		return mode, "unchanged: an existing database keeps its mode; STREAMER_ORDERING=ticks frees publishers from the global commit lock"
	}
}

// ApplyOrdering puts the database conn is connected to in the mode
// `streamer migrate` leaves it in, after Migrate: want when it names one,
// else the default (a new database, applied 0, gets ticks; an existing one
// keeps its mode; see defaultOrdering). It switches only when the database
// is in another mode (streamer.set_ordering waits for publishers in
// flight) and returns the mode now in force and why.
func ApplyOrdering(ctx context.Context, conn *pgx.Conn, want Ordering, applied int32) (Ordering, string, error) {
	mode, err := ReadOrdering(ctx, conn)
	if err != nil {
		return "", "", err
	}
	reason := "STREAMER_ORDERING"
	if want == "" {
		want, reason = defaultOrdering(mode, applied)
	}
	if mode != want {
		if err := SetOrdering(ctx, conn, want); err != nil {
			return "", "", err
		}
	}
	return want, reason, nil
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

// AppliedVersion returns the version of the last migration applied to the
// database (0 when none has been: no version table yet). Read it before
// Migrate to tell a new database from an existing one.
func AppliedVersion(ctx context.Context, q Querier) (int32, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("look for the migration version table: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int32
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+
		pgx.Identifier(strings.Split(VersionTable, ".")).Sanitize()).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the migration version: %w", err)
	}
	return v, nil
}
