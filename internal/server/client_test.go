package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/sseread"
)

// received is one SSE event as a client sees it.
type received struct {
	ID, Event, Data string
}

// client is a minimal SSE reader for tests: it follows the parsing rules of
// the HTML spec (fields, comments, multi-line data), independently of the
// server's encoder. Tests of wire compatibility use third-party parsers too.
type client struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	events chan received
	errc   chan error
	lastID string
}

func subscribe(t testing.TB, base string, streams []string, lastID string) *client {
	t.Helper()
	return subscribeQuery(t, base, url.Values{"stream": streams}, lastID)
}

// subscribeQuery opens /events with query q and Last-Event-ID lastID ("":
// none), and requires 200.
func subscribeQuery(t testing.TB, base string, q url.Values, lastID string) *client {
	t.Helper()
	c, resp := dial(t, base, q, lastID)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return c
}

// dial opens /events and returns the client with its response (any status).
func dial(t testing.TB, base string, q url.Values, lastID string) (*client, *http.Response) {
	t.Helper()
	return dialWith(t, http.DefaultClient, base, q, lastID)
}

// dialWith is dial with the given HTTP client.
func dialWith(t testing.TB, hc *http.Client, base string, q url.Values, lastID string) (*client, *http.Response) {
	t.Helper()
	h := http.Header{}
	if lastID != "" {
		h.Set("Last-Event-ID", lastID)
	}
	return dialHeader(t, hc, base, q, h)
}

// dialHeader is dialWith with request headers h (Last-Event-ID among them,
// if any).
func dialHeader(t testing.TB, hc *http.Client, base string, q url.Values, h http.Header) (*client, *http.Response) {
	t.Helper()
	lastID := h.Get("Last-Event-ID")
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?"+q.Encode(), nil)
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	c := &client{t: t, resp: resp, cancel: cancel, events: make(chan received, 100000), errc: make(chan error, 1), lastID: lastID}
	if resp.StatusCode == http.StatusOK {
		go c.read()
	}
	t.Cleanup(c.close)
	return c, resp
}

// read reports each event with its own id only ("" when it has none), not
// the one carried over, so that tests see which events carry an id;
// lastID is the last id of an event with data.
func (c *client) read() {
	defer close(c.events)
	c.errc <- sseread.Read(c.resp.Body, "", func(b sseread.Block) {
		if !b.HasData {
			return
		}
		if b.ID != "" {
			c.lastID = b.ID
		}
		c.events <- received{ID: b.ID, Event: b.Type, Data: b.Data}
	})
}

// next waits for the next event.
func (c *client) next() received {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		require.True(c.t, ok, "stream ended: %v", c.err())
		return ev
	case <-time.After(15 * time.Second):
		c.t.Fatalf("no event within 15s")
		return received{}
	}
}

// take waits for n events.
func (c *client) take(n int) []received {
	c.t.Helper()
	out := make([]received, 0, n)
	for range n {
		out = append(out, c.next())
	}
	return out
}

// ended waits until the server ends the stream and returns the events that
// arrived before the end.
func (c *client) ended() []received {
	c.t.Helper()
	var out []received
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			c.t.Fatalf("stream did not end within 15s")
		}
	}
}

func (c *client) err() error {
	select {
	case err := <-c.errc:
		return err
	default:
		return nil
	}
}

func (c *client) close() {
	c.cancel()
	if c.resp.ProtoMajor == 1 {
		// (An HTTP/2 body can block a second reader after the
		// cancellation; closing it is enough there.)
		_, _ = io.Copy(io.Discard, c.resp.Body)
	}
	_ = c.resp.Body.Close()
}
