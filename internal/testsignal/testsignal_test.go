package testsignal

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// fakeTB records Fatalf instead of stopping the goroutine, so the failure
// paths can be observed.
type fakeTB struct {
	fatals []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

var _ TB = (testing.TB)(nil)

func TestTestSignal(t *testing.T) {
	t.Parallel()

	t.Run("ZeroValueIsInert", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		for i := range BufferSize * 2 {
			s.Signal(i) // must neither block nor panic
		}
		require.Zero(t, s.dropped.Load())

		var nilSignal *TestSignal[string]
		nilSignal.Signal("x")
	})

	t.Run("UninitialisedWaitPanics", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		require.Panics(t, func() { s.WaitOrTimeout(t) })
		require.Panics(t, func() { s.RequireEmpty(t) })
		require.Panics(t, func() { s.WaitC() })
	})

	t.Run("SignalThenWait", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[string]
		s.Init()
		s.Signal("a")
		s.Signal("b")
		require.Equal(t, "a", s.WaitOrTimeout(t))
		require.Equal(t, "b", s.WaitOrTimeout(t))
		s.RequireEmpty(t)
	})

	t.Run("WaitFromAnotherGoroutine", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() { s.Signal(i) })
		}
		sum := 0
		for range 10 {
			sum += s.WaitOrTimeout(t)
		}
		wg.Wait()
		require.Equal(t, 45, sum)
		s.RequireEmpty(t)
	})

	t.Run("WaitC", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		s.Signal(7)
		select {
		case v := <-s.WaitC():
			require.Equal(t, 7, v)
		case <-time.After(Timeout):
			require.FailNow(t, "no value on WaitC")
		}
	})

	t.Run("TimeoutFailsTest", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		s.timeout = time.Millisecond
		tb := &fakeTB{}
		require.Zero(t, s.WaitOrTimeout(tb))
		require.Len(t, tb.fatals, 1)
		require.Contains(t, tb.fatals[0], "timed out")
	})

	t.Run("RequireEmptyFailsWhenBuffered", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		s.Signal(1)
		tb := &fakeTB{}
		s.RequireEmpty(tb)
		require.Len(t, tb.fatals, 1)
		require.Contains(t, tb.fatals[0], "expected no")
	})

	t.Run("OverflowIsReported", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		for i := range BufferSize + 3 {
			s.Signal(i) // never blocks, even when full
		}
		tb := &fakeTB{}
		require.Equal(t, 0, s.WaitOrTimeout(tb))
		require.Len(t, tb.fatals, 1)
		require.Contains(t, tb.fatals[0], "3 int signal(s) dropped")

		tb = &fakeTB{}
		s.RequireEmpty(tb)
		require.NotEmpty(t, tb.fatals)
	})

	t.Run("InitResets", func(t *testing.T) {
		t.Parallel()

		var s TestSignal[int]
		s.Init()
		s.Signal(1)
		s.Init()
		s.RequireEmpty(t)
	})
}

func TestReceive(t *testing.T) {
	t.Parallel()

	t.Run("ValueArrives", func(t *testing.T) {
		t.Parallel()
		ch := make(chan int, 1)
		ch <- 7
		tb := &fakeTB{}
		require.Equal(t, 7, Receive(tb, ch, time.Millisecond, "no int"))
		require.Empty(t, tb.fatals)
	})

	t.Run("ClosedChannelGivesZero", func(t *testing.T) {
		t.Parallel()
		ch := make(chan struct{})
		close(ch)
		tb := &fakeTB{}
		Receive(tb, ch, time.Hour, "not closed")
		require.Empty(t, tb.fatals)
	})

	t.Run("TimeoutFailsTest", func(t *testing.T) {
		t.Parallel()
		tb := &fakeTB{}
		require.Zero(t, Receive(tb, make(chan int), time.Millisecond, "no int arrived"))
		require.Equal(t, []string{"no int arrived (waited 1ms)"}, tb.fatals)
	})
}

func TestWithin(t *testing.T) {
	t.Parallel()

	t.Run("Returns", func(t *testing.T) {
		t.Parallel()
		tb := &fakeTB{}
		ran := false
		Within(tb, time.Hour, "f", func() { ran = true })
		require.True(t, ran, "Within returns after f")
		require.Empty(t, tb.fatals)
	})

	t.Run("TimeoutFailsTest", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		returned := make(chan struct{})
		tb := &fakeTB{}
		Within(tb, time.Millisecond, "Stop", func() {
			defer close(returned)
			<-release
		})
		require.Equal(t, []string{"Stop did not return (waited 1ms)"}, tb.fatals)
		close(release)
		<-returned
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
