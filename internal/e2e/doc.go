// Package e2e holds streamer's end-to-end tests: the real binary, started as
// a process against a fresh database, driven by clients we did not write:
// headless Chromium (through chromedp) loading the inspector page and
// /streamer.js, and third-party Go SSE client libraries.
//
// # Overview
//
// [TestE2E] builds ./cmd/streamer once (with -race when the tests run with
// it) and runs every scenario as a subtest against its own server process
// and database. The browser scenarios share one Chromium, each in its own
// tab; they need /usr/bin/chromium (or STREAMER_CHROMIUM): without it they
// are skipped, or fail when CI=true, so that CI never passes by skipping.
//
// The scenarios: the inspector shows events inserted with SQL, of every
// type, one it was never told about included; its SSE parser fed awkward
// chunks; the server process restarts (SIGTERM) mid-stream while events keep
// being inserted and the page ends with every event exactly once, in order,
// having reconnected with Last-Event-ID; the inspector's streamer.reauth row
// and its resume once a fresh token is pasted; the page-born-stale case through
// /streamer.js; /streamer.js recovering when EventSource gives up (400, 503);
// /streamer.js with a token function on a server that requires tokens,
// reconnecting with a fresh token after streamer.reauth without missing an
// event (and no token in the server's log); the publish form; a screenshot, also checked at phone size; and resuming
// with Last-Event-ID through tmaxmax/go-sse and launchdarkly/eventsource,
// across a disconnect and a server restart.
//
// [TestFault] runs the fault tests of docs/reliability.md under load (SQL
// publishers with rollbacks, subscribers resuming at random, an exact
// comparison with the database at the end): the LISTEN connection
// blackholed and the read and publish pools reset through
// internal/faultproxy, the
// database made read-only, the server killed with SIGKILL, and PostgreSQL
// (a cluster of the test's own) shut down fast or killed, twice in a row.
// STREAMER_CHAOS=1 (make chaos) runs their longer versions.
//
// UPDATE_SCREENSHOT=1 makes the screenshot scenario overwrite
// docs/inspector.png; otherwise it writes to a temporary directory.
//
// [TestInstances] and [TestNginx] run several server processes on one
// database (instances_test.go) and Debian's nginx in front of them
// (nginxproc_test.go), each nginx started by the test on loopback ports with
// docs/nginx.conf and its pid, logs and temp files in a temporary
// directory; a small SSE client of the tests' own (follower) fails over
// between instances with its Last-Event-ID. Without nginx (/usr/sbin/nginx
// or STREAMER_NGINX) the nginx tests are skipped, or fail when CI=true.
// docs/operations.md lists what each shows.
//
// [TestGap] (gap_test.go) runs the retention acceptance scenario of issue
// #12: 200 events, the first 100 pruned with streamer.prune, clients
// resuming before and at the horizon and one live throughout.
// [TestGapBrowser] checks the gap in Chromium: /streamer.js's onGap and
// the inspector's gap row.
//
// # Invariants
//
//   - Tests wait on conditions with deadlines (polling the page's DOM or a
//     client's received events), never on a bare sleep.
//   - Every nginx a test starts is stopped (SIGTERM, then SIGKILL) at the
//     test's cleanup, and writes nothing outside the test's temporary
//     directory.
//   - Every server process a test starts is stopped (SIGTERM, then SIGKILL
//     after a deadline) before its database is dropped.
//   - Every process a test starts (server, nginx, Prometheus, postmaster)
//     is started through internal/childproc: it dies with the test binary
//     and by no thread of it ending.
//   - A server process that exits without being stopped fails its test as
//     soon as the harness looks at it (start, /readyz, stop, kill), with the
//     exit status last and, before it, its log's last lines and every race
//     report or panic in full (logReport): CI cuts long output in the middle.
//   - Every PostgreSQL cluster a fault test starts or restarts is shut down
//     and its directory removed when the test ends; every fault proxy is
//     closed after the server that used it has stopped.
package e2e
