// Package sseread parses a Server-Sent Events stream line by line as the
// HTML standard's EventSource does (fields, comments, multi-line data), for
// the tests that check what a client sees, independently of the server's
// encoder. It reports every block (the lines up to a blank one), so that a
// reader decides itself what the last event id is; cmd/streamer-bench has
// its own allocation-free parser for load.
//
// # Invariants
//
//   - [Block.ID] is the block's own id field only; [Block.LastID] is
//     EventSource's last event ID after the block: ID when the block has
//     one (even empty), else carried over from the blocks before it, or
//     the lastID [Read] started from.
//   - Data lines are joined with "\n"; a block without one has HasData
//     false, and EventSource would dispatch no event for it.
//   - Comment lines and unknown fields change nothing.
package sseread
