// Package testnet holds listeners for tests that need a real TCP listener
// to misbehave on cue. It is for tests only.
//
// # Invariants
//
//   - Once [Breakable.Break] has been called, every Accept returns
//     [ErrAcceptBroken], and a connection accepted meanwhile is closed,
//     never returned.
//   - [Listen] listens for real (net.ListenConfig) and returns the
//     listener that its wrap function makes of it.
//   - A [Recorder] hands every connection it accepts to the test before
//     Accept returns it; [SendBuffer] reads SO_SNDBUF from the kernel.
package testnet
