package startstop_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/startstop"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ticker is a minimal service: one goroutine that waits for its context.
type ticker struct {
	startstop.Base
	running atomic.Int32
	cause   atomic.Value
}

func (s *ticker) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	if n := s.running.Add(1); n != 1 {
		panic("two runs at once")
	}
	go func() {
		defer stopped()
		defer s.running.Add(-1)
		started()
		<-ctx.Done()
		s.cause.Store(context.Cause(ctx))
	}()
	return nil
}

func TestStress(t *testing.T) {
	t.Parallel()
	startstoptest.Stress(t, &ticker{})
}

func TestStopCause(t *testing.T) {
	t.Parallel()
	s := &ticker{}
	require.NoError(t, s.Start(context.Background()))
	<-s.Started()
	s.Stop()
	require.ErrorIs(t, s.cause.Load().(error), startstop.ErrStop)
}

func TestCancelStops(t *testing.T) {
	t.Parallel()
	s := &ticker{}
	ctx, cancel := context.WithCancelCause(context.Background())
	require.NoError(t, s.Start(ctx))
	boom := errors.New("boom")
	cancel(boom)
	<-s.Stopped()
	require.ErrorIs(t, s.cause.Load().(error), boom)
	require.Zero(t, s.running.Load())
	// Restartable after a cancellation.
	require.NoError(t, s.Start(context.Background()))
	s.Stop()
}

func TestFailedStartLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	var b startstop.Base
	_, ok, _, stopped := b.StartInit(context.Background())
	require.True(t, ok)
	stopped() // Start failed before starting a goroutine
	<-b.Stopped()
	_, ok, _, stopped = b.StartInit(context.Background())
	require.True(t, ok, "a failed Start must allow the next one")
	stopped()
}

func TestChannelsBeforeStart(t *testing.T) {
	t.Parallel()
	var b startstop.Base
	<-b.Started()
	<-b.Stopped()
	b.Stop()
}
