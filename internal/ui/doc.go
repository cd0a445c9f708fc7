// Package ui serves streamer's browser side: the inspector page at "/", its
// assets under "/ui/", and the JavaScript client module at "/streamer.js".
//
// # Overview
//
// The files in static/ are plain HTML, CSS and ES modules, embedded in the
// binary with go:embed; there is no build step. /streamer.js, the client
// applications import, wraps the browser's EventSource. The inspector does
// not subscribe with it (it imports only its reconnect backoff):
// EventSource delivers a typed event only to listeners of its type, and the
// inspector must show every type without being told. It reads
// /events with fetch and an SSE parser of its own (app.js, following the
// HTML standard's event stream rules), reconnects with Last-Event-ID, and
// sends the pasted token in the Authorization header, never in a URL.
//
// The metrics page at /ui/metrics scrapes /metrics from the browser every
// few seconds (?interval=ms) and plots the key series: connections,
// deliveries per second, the delivery lag's p99 and the live database
// read time's p99, computed as PromQL would (counter deltas, histogram
// bucket deltas per interval). It is for a quick look without a
// Prometheus; docs/grafana-dashboard.json is the operator's dashboard.
//
// # Invariants
//
//   - Handler answers only the paths in [Paths]; anything else is 404, so it
//     never shadows another route of the server.
//   - Every answer carries an ETag of its content and Cache-Control: no-cache:
//     browsers revalidate, so a new binary's files are picked up at once.
//   - The page runs under a Content-Security-Policy that allows only its own
//     origin: no inline script or style, no third-party resource.
package ui
