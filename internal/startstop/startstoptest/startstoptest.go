// Package startstoptest is the shared stress test of the lifecycle contract
// in package startstop: every service runs it from its own tests.
package startstoptest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/startstop"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// stepTimeout bounds each Start and Stop; a service that exceeds it fails.
const stepTimeout = 30 * time.Second

// Stress checks the lifecycle contract on svc: Stop before Start, double
// Start, double and concurrent Stop, restart after Stop, stop by cancelling
// Start's context, and many start/stop cycles from several goroutines. Run
// it with -race. svc must be startable without outside intervention.
func Stress(t *testing.T, svc startstop.Service) {
	t.Helper()
	ctx := context.Background()

	within(t, "Stop before Start", svc.Stop)

	within(t, "Start", func() { mustStart(t, ctx, svc) })
	within(t, "second Start", func() { mustStart(t, ctx, svc) })
	within(t, "Stop", svc.Stop)
	within(t, "second Stop", svc.Stop)

	within(t, "restart", func() { mustStart(t, ctx, svc) })
	within(t, "concurrent Stop", func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(svc.Stop)
		}
		wg.Wait()
	})

	if b, ok := svc.(interface{ Stopped() <-chan struct{} }); ok {
		cctx, cancel := context.WithCancel(ctx)
		within(t, "Start to cancel", func() { mustStart(t, cctx, svc) })
		cancel()
		select {
		case <-b.Stopped():
		case <-time.After(stepTimeout):
			t.Fatal("startstoptest: cancelling Start's context did not stop the service")
		}
		within(t, "Stop after cancel", svc.Stop)
	}

	within(t, "cycles", func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 10 {
					if err := svc.Start(ctx); err != nil {
						t.Errorf("startstoptest: Start: %v", err)
						return
					}
					svc.Stop()
				}
			})
		}
		wg.Wait()
	})
	within(t, "final Stop", svc.Stop)
}

func mustStart(t *testing.T, ctx context.Context, svc startstop.Service) {
	t.Helper()
	if err := svc.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("startstoptest: Start: %v", err)
	}
}

// within runs step and fails the test if it takes longer than stepTimeout.
func within(t *testing.T, name string, step func()) {
	t.Helper()
	testsignal.Within(t, stepTimeout, "startstoptest: "+name, step)
}
