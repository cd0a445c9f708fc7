// Package refserver holds the two servers the load tool measures streamer
// against, each run as its own process by the tool:
//
//   - the baseline ([BaselineMain]): the minimal net/http SSE broadcaster
//     with no database and no history;
//   - the floor ([FloorMain]): not a server anyone would run, but the least
//     a server can do per delivery, as a reference for what is left to gain.
//
// Both publish with POST /publish, one event per line, "<stream>\t<data>",
// and encode each event once, "id: <n>\ndata: <data>\n\n", for every
// subscriber.
//
// # Invariants
//
//   - Event ids count from 1 per process, over all streams, in publishing
//     order.
//   - Each serves until SIGTERM or SIGINT, then closes its listener and
//     returns; the baseline first lets its handlers end (up to 5 s).
package refserver
