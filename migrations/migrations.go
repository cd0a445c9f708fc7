// Package migrations holds streamer's SQL schema and applies it.
//
// # Overview
//
// The numbered *.sql files are embedded and applied in order by
// jackc/tern. [Migrate] is idempotent and safe to run from several hosts at
// once: tern serialises migrators with a session advisory lock, and the schema
// is created under a lock of our own before tern's version table is.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records the applied migration version.
const VersionTable = "streamer.schema_version"

// LockClass is the first key of every advisory lock streamer takes,
// pg_advisory_lock(LockClass, id); the SQL of the migrations writes the
// number itself (streamer.stamp_commit), so it never changes.
const LockClass = 1400000001

// The second keys of streamer's advisory locks.
const (
	// SchemaLockID serialises Migrate's bootstrap CREATE SCHEMA across hosts.
	SchemaLockID = 0
	// CommitLockID orders commits: streamer.stamp_commit takes it
	// transaction-level at every publishing COMMIT.
	CommitLockID = 1
	// PruneStepLockID serialises prune steps: streamer.prune_step takes it
	// transaction-level (006_retention.sql).
	PruneStepLockID = 2
	// RetentionLockID is held (session-level) by the one retention service
	// that prunes at a time (internal/retention).
	RetentionLockID = 3
	// SequencerLockID is held (session-level) by the one sequencer that
	// records ticks at a time (internal/sequencer). Ticks serialise on the
	// streamer.ordering row whatever the lock: it only saves work.
	SequencerLockID = 4
)

// Migrate applies every migration not yet applied to the database conn is
// connected to.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	return MigrateTo(ctx, conn, -1)
}

// MigrateTo migrates the database conn is connected to up to version (the
// number of the last migration to apply), or to the latest when version is
// negative. Tests use it to build a database as an older release left it.
func MigrateTo(ctx context.Context, conn *pgx.Conn, version int32) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", int32(LockClass), int32(SchemaLockID)); err != nil {
		return fmt.Errorf("migrate: take schema lock: %w", err)
	}
	_, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS streamer")
	if _, uerr := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", int32(LockClass), int32(SchemaLockID)); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("migrate: create schema streamer: %w", err)
	}

	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("migrate: create migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrate: load embedded migrations: %w", err)
	}
	if version < 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrate: apply: %w", err)
	}
	return nil
}
