package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/startstop"
	"github.com/streamer-dev/streamer/internal/testnet"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// fakeService records its starts and stops in a shared log; fail, when set,
// makes it stop by itself with that error once started.
type fakeService struct {
	startstop.Base
	name     string
	log      *[]string
	mu       *sync.Mutex
	startErr error
	fail     chan error
	err      error
}

func (f *fakeService) record(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, what+" "+f.name)
}

func (f *fakeService) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := f.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	if f.startErr != nil {
		stopped()
		return f.startErr
	}
	f.record("start")
	go func() {
		defer stopped()
		started()
		select {
		case <-ctx.Done():
		case err := <-f.fail:
			f.err = err
		}
	}()
	return nil
}

func (f *fakeService) Err() error { return f.err }

func (f *fakeService) entry() service {
	return service{name: f.name, svc: f, start: f.Start, stop: func(context.Context) error {
		f.record("stop")
		f.Stop()
		return nil
	}}
}

func fakes(names ...string) ([]*fakeService, *[]string) {
	var log []string
	var mu sync.Mutex
	out := make([]*fakeService, len(names))
	for i, n := range names {
		out[i] = &fakeService{name: n, log: &log, mu: &mu, fail: make(chan error, 1)}
	}
	return out, &log
}

func entries(fs []*fakeService) []service {
	out := make([]service, len(fs))
	for i, f := range fs {
		out[i] = f.entry()
	}
	return out
}

func TestRunServices(t *testing.T) {
	t.Parallel()

	t.Run("stops in reverse order when ctx ends", func(t *testing.T) {
		t.Parallel()
		fs, log := fakes("a", "b", "c")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.NoError(t, runServices(ctx, zerolog.Nop(), time.Second, entries(fs)))
		require.Equal(t, []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}, *log)
	})

	t.Run("a service that fails ends the others with its error", func(t *testing.T) {
		t.Parallel()
		fs, log := fakes("a", "b", "c")
		boom := errors.New("serve failed")
		fs[1].fail <- boom
		err := runServices(context.Background(), zerolog.Nop(), time.Second, entries(fs))
		require.ErrorIs(t, err, boom)
		require.ErrorContains(t, err, "b: ")
		require.Equal(t, []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}, *log)
	})

	t.Run("a failed start stops what started", func(t *testing.T) {
		t.Parallel()
		fs, log := fakes("a", "b", "c")
		boom := errors.New("bad address")
		fs[1].startErr = boom
		err := runServices(context.Background(), zerolog.Nop(), time.Second, entries(fs))
		require.ErrorIs(t, err, boom)
		require.Equal(t, []string{"start a", "stop a"}, *log)
	})
}

// TestServeEndsWhenServingFails: when the HTTP server's listener breaks,
// serve does not stay up serving nothing: it shuts down and returns the
// error, so the process exits 1 (issue #10, bug a).
func TestServeEndsWhenServingFails(t *testing.T) {
	t.Parallel()
	lns := make(chan *testnet.Breakable, 1)
	cfg := serveConfig{
		DatabaseURL: pgtest.NewDB(t), Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		TickInterval: sequencer.DefaultInterval,
		Auth:         authFlags{AuthCookie: auth.DefaultCookie},
		listen:       testnet.ListenBreakable(lns),
	}
	done := make(chan error, 1)
	go func() { done <- serve(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t))) }()
	var ln *testnet.Breakable
	select {
	case ln = <-lns:
	case err := <-done:
		t.Fatalf("serve ended before listening: %v", err)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, ln.Break())
	err = testsignal.Receive(t, done, 20*time.Second, "serve kept running after its HTTP server failed")
	require.ErrorIs(t, err, testnet.ErrAcceptBroken)
	require.ErrorContains(t, err, "http: ")
}
