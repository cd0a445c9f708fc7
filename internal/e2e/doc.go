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
// The scenarios: the inspector shows events inserted with SQL; the server
// process restarts (SIGTERM) mid-stream while events keep being inserted and
// the page ends with every event exactly once, in order, the browser's own
// EventSource having reconnected; the page-born-stale case through
// /streamer.js; /streamer.js recovering when EventSource gives up (400, 503);
// /streamer.js with a token function on a server that requires tokens,
// reconnecting with a fresh token after streamer.reauth without missing an
// event (and no token in the server's log); the publish form; a screenshot, also checked at phone size; and resuming
// with Last-Event-ID through tmaxmax/go-sse and launchdarkly/eventsource,
// across a disconnect and a server restart.
//
// UPDATE_SCREENSHOT=1 makes the screenshot scenario overwrite
// docs/inspector.png; otherwise it writes to a temporary directory.
//
// # Invariants
//
//   - Tests wait on conditions with deadlines (polling the page's DOM or a
//     client's received events), never on a bare sleep.
//   - Every server process a test starts is stopped (SIGTERM, then SIGKILL
//     after a deadline) before its database is dropped.
package e2e
