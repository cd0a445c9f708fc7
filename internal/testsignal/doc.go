// Package testsignal provides typed, optional signals that long-running
// services raise at interesting moments ("listening began", "backoff error")
// so that tests can wait for those moments instead of sleeping.
//
// # Overview
//
// A service embeds [TestSignal] values in a small struct of its own (for
// example listener.TestSignals) and calls [TestSignal.Signal] at the moment
// the event happens. In production nobody calls [TestSignal.Init], so every
// Signal is a cheap no-op. A test calls Init before starting the service and
// then waits with [TestSignal.WaitOrTimeout], which fails the test after
// [Timeout] rather than hanging:
//
//	signals := &listener.TestSignals{}
//	signals.Init()
//	l := listener.New(listener.Config{..., TestSignals: signals})
//	require.NoError(t, l.Start(ctx))
//	pid := signals.Listening.WaitOrTimeout(t)
//
// To show that something did not happen, wait for a later positive signal
// first and then call [TestSignal.RequireEmpty]; never sleep and look.
//
// [Receive] and [Within] bound a test's other waits the same way: a value
// from any channel, and a call that must return.
//
// # Invariants
//
//   - The zero TestSignal (and a nil *TestSignal) is inert: Signal does
//     nothing and never blocks, allocates or panics.
//   - Signal never blocks, initialised or not. Values go into a buffer of
//     [BufferSize]; a value that does not fit is dropped and counted, and the
//     next WaitOrTimeout or RequireEmpty fails the test, so an overflow is
//     never silent.
//   - Init must happen before the signalling goroutine starts (in practice:
//     before the service's Start); it is not synchronised against Signal.
//   - The internal channel is never closed.
//   - WaitOrTimeout, RequireEmpty, Receive and Within call TB.Fatalf and so, like
//     testing.T.FailNow, must be called from the test's own goroutine.
//   - This package does not import "testing": [TB] is the two-method subset
//     of testing.TB that it needs, so production binaries do not link the
//     testing package.
package testsignal
