// Package pgtest gives each test its own PostgreSQL database, cloned from a
// template that is migrated once per test binary.
//
// # Overview
//
// Every package whose tests touch the database has one TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and its tests call [NewDB] (a connection string) or [NewPool] (a pool). The
// first such call in a test binary finds a server, creates the template
// database and runs [migrations.Migrate] on it; every call then runs
// CREATE DATABASE ... TEMPLATE, which copies the migrated schema in tens of
// milliseconds. [Admin] is a pool on the same server's maintenance database,
// for pg_terminate_backend and other server-wide statements. [WriteHistory]
// fills a test's database with a long past of commits in one statement, for
// plan tests and benchmarks.
//
// The template is in the ordering mode [OrderingEnv] names
// (STREAMER_TEST_ORDERING=trigger, the default, or ticks; see
// migrations/007_ticks.sql), so that `make test` runs the delivery tests in
// both. Trigger stays the tests' default on purpose, although `streamer
// migrate` puts a new database in ticks mode: the template is made with
// [migrations.Migrate], which leaves trigger mode, not with the command, and
// the ticks pass covers the packages whose delivery depends on the mode
// (TICKS_PKGS in the Makefile). In ticks mode nothing is numbered until a tick: tests that read
// positions from the database without a server's sequencer call [Tick];
// tests of what only the trigger mode does call [SkipUnlessTrigger].
//
// The server is chosen once per test binary, in this order:
//
//  1. A Docker engine that answers within a second: testcontainers starts a
//     postgres:15-alpine container.
//  2. TEST_DATABASE_URL, else DATABASE_URL: an existing server on which the
//     role may CREATE DATABASE. The template and the test databases get
//     names with a random part, so test binaries running at once, from one
//     checkout or several, never collide.
//  3. PostgreSQL server binaries on this machine: a throwaway cluster from
//     internal/pgcluster (unix socket only, fsync off, on /dev/shm when it
//     has room; see that package). When the tests run as root it runs as
//     the postgres OS user.
//  4. None of these: the test is skipped, or fails when CI=true, so that CI
//     never passes by skipping.
//
// [Main] runs the tests and then tears down what the binary started: the
// container, the throwaway cluster, or (on an existing server) the
// template. After a successful run it fails the binary if goroutines leaked
// (go.uber.org/goleak); a pool that was never closed counts as a leak.
//
// # Invariants
//
//   - Each [NewDB] call returns a database no other test uses. NOTIFY and
//     LISTEN are per database, so tests never hear each other's
//     notifications.
//   - A test's database is dropped WITH (FORCE) in t.Cleanup, after the cleanups
//     registered later than [NewDB] (such as [NewPool]'s pool.Close) and
//     before those registered earlier.
//   - The template is never connected to after it is migrated; CREATE
//     DATABASE ... TEMPLATE fails while anyone is connected to it.
//   - [Admin]'s pool is shared by the whole binary: callers never close it;
//     [Main] does, before the goroutine-leak check.
//   - A throwaway cluster dies with the test binary, even one killed by
//     SIGKILL or by go test -timeout, and [Main] removes its directory
//     (internal/pgcluster's invariants).
//   - The server is looked for once per binary. If none can be had, every
//     test that asks is skipped (failed under CI=true) with the same reason.
package pgtest
