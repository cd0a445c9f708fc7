package testsignal

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Timeout is how long [TestSignal.WaitOrTimeout] waits before failing the
// test. It is generous because CI machines running -race are slow; a test
// that passes never waits for it.
const Timeout = 5 * time.Second

// BufferSize is how many values an initialised [TestSignal] holds before
// further values are dropped (and reported by the next wait).
const BufferSize = 1024

// TB is the part of testing.TB that this package uses. *testing.T,
// *testing.B and *testing.F satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// TestSignal is a typed, optional event channel for tests. See the package
// documentation. The zero value is ready to use and inert.
type TestSignal[T any] struct {
	ch      chan T
	dropped atomic.Int64

	// timeout overrides Timeout when non-zero; set only by this package's
	// tests.
	timeout time.Duration
}

// Init enables the signal. Call it from tests only, before the goroutine that
// calls Signal starts. Calling Init again discards buffered values.
func (s *TestSignal[T]) Init() {
	s.ch = make(chan T, BufferSize)
	s.dropped.Store(0)
}

// Signal records v. It is a no-op when s is nil or not initialised, and it
// never blocks: if the buffer is full, v is dropped and counted.
func (s *TestSignal[T]) Signal(v T) {
	if s == nil || s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
		s.dropped.Add(1)
	}
}

// WaitOrTimeout returns the next value, failing tb with Fatalf if none
// arrives within [Timeout] or if values were dropped. It panics if the signal
// was never initialised, which is a bug in the test.
func (s *TestSignal[T]) WaitOrTimeout(tb TB) T {
	tb.Helper()
	s.mustBeInitialised()
	s.requireNoneDropped(tb)

	timeout := Timeout
	if s.timeout > 0 {
		timeout = s.timeout
	}
	return Receive(tb, s.ch, timeout, fmt.Sprintf("testsignal: timed out waiting for a %T signal", *new(T)))
}

// WaitC returns the channel values arrive on, for use in a select. It panics
// if the signal was never initialised.
func (s *TestSignal[T]) WaitC() <-chan T {
	s.mustBeInitialised()
	return s.ch
}

// RequireEmpty fails tb if a value is buffered or values were dropped. Use it
// only after waiting for a later positive signal, so that "empty" means
// "did not happen" rather than "has not happened yet".
func (s *TestSignal[T]) RequireEmpty(tb TB) {
	tb.Helper()
	s.mustBeInitialised()
	s.requireNoneDropped(tb)
	select {
	case v := <-s.ch:
		tb.Fatalf("testsignal: expected no %T signal, got %v", v, v)
	default:
	}
}

func (s *TestSignal[T]) mustBeInitialised() {
	if s == nil || s.ch == nil {
		panic("testsignal: signal not initialised; call Init in the test before starting the service")
	}
}

func (s *TestSignal[T]) requireNoneDropped(tb TB) {
	tb.Helper()
	if n := s.dropped.Load(); n > 0 {
		tb.Fatalf("testsignal: %d %T signal(s) dropped because the buffer of %d was full", n, *new(T), BufferSize)
	}
}

// Receive returns the next value from ch, failing tb if none arrives within
// timeout; what says what was waited for ("no frame arrived"). A closed
// channel gives its zero value at once, as a receive does.
func Receive[T any](tb TB, ch <-chan T, timeout time.Duration, what string) T {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		tb.Fatalf("%s (waited %s)", what, timeout)
		var zero T
		return zero
	}
}

// Within runs f on a goroutine of its own and fails tb if f has not
// returned within timeout; what names the call ("Stop"). It cannot stop a
// late f: the test fails and f runs on (the package's goroutine-leak check
// then reports it too).
func Within(tb TB, timeout time.Duration, what string, f func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	Receive(tb, done, timeout, what+" did not return")
}
