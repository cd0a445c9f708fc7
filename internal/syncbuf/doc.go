// Package syncbuf is a byte buffer that several goroutines may write to
// while another reads it: the sink for a child process's output or a
// logger's, read for a failure report or an assertion.
//
// # Invariants
//
//   - Every Write is whole in the buffer before the next one starts;
//     [Buffer.String] returns all that was written before it, in order.
package syncbuf
