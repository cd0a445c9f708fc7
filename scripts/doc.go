// Package scripts holds no Go code: its shell scripts serve the Makefile
// (devdb.sh the development database, ensure-deps.sh the system
// packages), and its tests run them as a new user would.
// pgbench-ordering.sh measures publishers per ordering mode, and
// pgbench-logical.sh what logical decoding would cost them, for
// docs/benchmarks.md; both are run by hand, against a database (or, for
// the second, a throwaway cluster it restarts) of their own.
//
// # Invariants
//
//   - scripts/devdb.sh start works from a checkout anywhere: in /tmp, in a
//     path with spaces, and as root under a home directory of mode 0700,
//     where the cluster lives under /var/tmp instead, and start says where.
//     It never advises loosening a permission (TestDevDBFromAnywhere).
package scripts
