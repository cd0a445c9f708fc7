// Package pgcluster starts a throwaway PostgreSQL cluster: this machine's
// server binaries, a new directory, a unix socket and no TCP port, fsync off.
// The tests get one through internal/pgtest when neither Docker nor
// DATABASE_URL is available; the load tool (cmd/streamer-bench) starts one
// directly. It imports nothing test-only, so a program may link it.
//
// # Overview
//
// [Start] finds the binaries (/usr/lib/postgresql/*/bin, the highest
// version; else pg_config --bindir; else PATH), creates a directory on
// /dev/shm (tmpfs: cloning a database there takes ~20 ms instead of a few
// hundred on a busy disk) when it has room, else in $TMPDIR, else /tmp, runs
// initdb and postgres with [ServerArgs], and waits until a connection
// succeeds. When the caller is root the server runs as the postgres OS
// user, which initdb and postgres require.
//
// # Invariants
//
//   - A cluster dies with the process that started it, even one killed by
//     SIGKILL, and with nothing else: postgres is started by
//     internal/childproc, with a parent-death signal from an OS thread that
//     lives until postgres has exited and is then handed back to the
//     runtime, never ended (which would kill other children forked from it).
//   - [Cluster.Stop] shuts postgres down and removes the cluster's directory;
//     it is safe to call more than once and returns the first call's result.
//     A process that died without calling it leaves the directory behind,
//     and the next [Start] on the machine removes it (the directory names its
//     owner's pid in owner.pid; a live owner's directory is never touched).
//     Nothing else of a cluster outlives it, even when it was killed: its
//     dynamic shared memory is files under data/ (not POSIX segments in
//     /dev/shm), and the System V segment a killed postmaster leaves (its
//     postmaster.pid names it) is removed with the directory.
//   - The socket path fits the 107 bytes a unix socket path may have: a
//     parent directory too long for it is never chosen.
//   - When no cluster can be started because something is missing (no
//     binaries, root without a postgres user), the error is an
//     [*UnavailableError]; any other error means a server failed.
package pgcluster
