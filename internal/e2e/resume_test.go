package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/launchdarkly/eventsource"
	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"
)

// received is one event as an independent client library parsed it.
type received struct {
	ID, Type, Data string
}

// dialer subscribes to stream at base with a third-party client, sending
// lastEventID ("" for none), and returns what it receives. The client
// reconnects by itself, with its own Last-Event-ID, until closed; close
// waits until its goroutines are done.
type dialer func(t *testing.T, base, stream, lastEventID string) (events <-chan received, close func())

// (e) Wire compatibility with SSE parsers that are not ours, in the resume
// scenario: subscribe, receive, disconnect, publish, reconnect with
// Last-Event-ID and get exactly the missed events, then live ones; then the
// server process restarts and the library's own reconnect resumes exactly.
func testIndependentClientResume(t *testing.T, bin string, dial dialer) {
	d := deploy(t, bin)
	take := func(events <-chan received, want ...received) []received {
		t.Helper()
		var got []received
		for _, w := range want {
			select {
			case ev, ok := <-events:
				require.True(t, ok, "stream ended; got %+v, want %+v", got, want)
				got = append(got, ev)
				require.Equal(t, w.Type, ev.Type, "event %d of %+v", len(got)-1, got)
				require.Equal(t, w.Data, ev.Data, "event %d of %+v", len(got)-1, got)
			case <-time.After(shortWait):
				t.Fatalf("timed out; got %+v, want %+v", got, want)
			}
		}
		return got
	}
	msgs := func(prefix string, n int) []received {
		var out []received
		for i := range n {
			out = append(out, received{Type: "message", Data: fmt.Sprintf("%s-%d", prefix, i)})
		}
		return out
	}
	publishAll := func(events []received) {
		for _, ev := range events {
			typ := ev.Type
			if typ == "message" {
				typ = ""
			}
			d.publish(t, "r", typ, ev.Data)
		}
	}
	var ids []string
	keep := func(evs []received) {
		for _, ev := range evs {
			if ev.Type != "streamer.shutdown" {
				ids = append(ids, ev.ID)
			}
		}
	}

	// A head() token makes the first subscription independent of when the
	// server registers it.
	start := d.head(t)
	first := msgs("first", 5)
	publishAll(first)
	events, closeFirst := dial(t, d.url, "r", start)
	got := take(events, first...)
	keep(got)
	closeFirst()

	// Missed while disconnected, including a typed multi-line event whose
	// line ends the parser must normalise to LF.
	missed := append(msgs("missed", 3), received{Type: "order.paid", Data: "line 1\r\nline 2\rline 3"})
	publishAll(missed)
	missed[3].Data = "line 1\nline 2\nline 3"
	events, closeSecond := dial(t, d.url, "r", got[len(got)-1].ID)
	defer closeSecond()
	keep(take(events, missed...))
	live := msgs("live", 3)
	publishAll(live)
	keep(take(events, live...))

	// The process restarts: the library reconnects by itself.
	d.stop()
	down := msgs("down", 3)
	publishAll(down)
	d.start()
	end := received{Type: "message", Data: "end"}
	publishAll([]received{end})
	keep(take(events, append(append([]received{{Type: "streamer.shutdown",
		Data: `{"reason":"server shutting down"}`}}, down...), end)...))
	requireOrdered(t, ids)
}

// dialGoSSE subscribes with github.com/tmaxmax/go-sse.
func dialGoSSE(t *testing.T, base, stream, lastEventID string) (<-chan received, func()) {
	t.Helper()
	transport := &http.Transport{}
	client := &sse.Client{
		HTTPClient: &http.Client{Transport: transport},
		// streamer answers 503 + Retry-After while it drains or is full:
		// worth retrying, unlike the default validator's verdict.
		ResponseValidator: func(r *http.Response) error {
			if r.StatusCode == http.StatusServiceUnavailable {
				return temporaryError{fmt.Errorf("503 %s", r.Status)}
			}
			return sse.DefaultValidator(r)
		},
		Backoff: sse.Backoff{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?stream="+stream, http.NoBody)
	require.NoError(t, err)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	conn := client.NewConnection(req)
	events := make(chan received, 1000)
	conn.SubscribeToAll(func(ev sse.Event) {
		if ev.Type == "" && ev.Data == "" {
			// go-sse reports the block that carries only "retry:" as an
			// event, which EventSource does not dispatch (no data). This
			// test never publishes empty data, so it is that block.
			return
		}
		events <- received{ID: ev.LastEventID, Type: typeOrMessage(ev.Type), Data: ev.Data}
	})
	done := make(chan error, 1)
	go func() { done <- conn.Connect() }()
	var closed bool
	closeFn := func() {
		if closed {
			return
		}
		closed = true
		cancel()
		err := <-done
		require.True(t, errors.Is(err, context.Canceled), "go-sse ended with %v", err)
		transport.CloseIdleConnections()
	}
	t.Cleanup(closeFn)
	return events, closeFn
}

// temporaryError makes go-sse retry.
type temporaryError struct{ error }

func (temporaryError) Temporary() bool { return true }

// typeOrMessage names an untyped event as EventSource does.
func typeOrMessage(typ string) string {
	if typ == "" {
		return "message"
	}
	return typ
}

// dialLaunchDarkly subscribes with github.com/launchdarkly/eventsource.
func dialLaunchDarkly(t *testing.T, base, stream, lastEventID string) (<-chan received, func()) {
	t.Helper()
	transport := &http.Transport{}
	req, err := http.NewRequest(http.MethodGet, base+"/events?stream="+stream, http.NoBody)
	require.NoError(t, err)
	s, err := eventsource.SubscribeWithRequestAndOptions(req,
		eventsource.StreamOptionHTTPClient(&http.Client{Transport: transport}),
		eventsource.StreamOptionLastEventID(lastEventID),
		eventsource.StreamOptionInitialRetry(100*time.Millisecond),
		// Keep reconnecting; without a handler errors block on s.Errors.
		eventsource.StreamOptionErrorHandler(func(error) eventsource.StreamErrorHandlerResult {
			return eventsource.StreamErrorHandlerResult{}
		}),
	)
	require.NoError(t, err)
	events := make(chan received, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Read until Close closes s.Events: the library blocks on sending.
		for ev := range s.Events {
			if r, ok := ev.(interface{ Retry() int64 }); ok && r.Retry() > 0 && ev.Data() == "" {
				continue // the "retry:" block, reported as an event: see dialGoSSE
			}
			events <- received{ID: ev.Id(), Type: typeOrMessage(ev.Event()), Data: ev.Data()}
		}
	}()
	var closed bool
	closeFn := func() {
		if closed {
			return
		}
		closed = true
		s.Close()
		<-done
		transport.CloseIdleConnections()
	}
	t.Cleanup(closeFn)
	return events, closeFn
}
