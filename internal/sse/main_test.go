package sse

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/launchdarkly/eventsource"
	"github.com/stretchr/testify/require"
	gosse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wantEvent is what an EventSource should report for one frame.
type wantEvent struct {
	ID, Type, Data string
}

// normalize is the independent statement of the rule: every CRLF and every
// lone CR becomes LF.
func normalize(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// parseGoSSE parses an SSE stream with github.com/tmaxmax/go-sse.
func parseGoSSE(t testing.TB, stream []byte) []wantEvent {
	t.Helper()
	var got []wantEvent
	for ev, err := range gosse.Read(bytes.NewReader(stream), &gosse.ReadConfig{MaxEventSize: 8 << 20}) {
		require.NoError(t, err)
		got = append(got, wantEvent{ID: ev.LastEventID, Type: ev.Type, Data: ev.Data})
	}
	return got
}

// parseLaunchDarkly parses an SSE stream with
// github.com/launchdarkly/eventsource's Decoder, reading to EOF so its line
// goroutine exits.
func parseLaunchDarkly(t testing.TB, stream io.Reader) []wantEvent {
	t.Helper()
	dec := eventsource.NewDecoder(stream)
	var got []wantEvent
	for {
		ev, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return got
		}
		require.NoError(t, err)
		got = append(got, wantEvent{ID: ev.Id(), Type: ev.Event(), Data: ev.Data()})
	}
}

// countingWriter counts the Writes and Flushes that reach the real
// ResponseWriter. It implements FlushError and Unwrap, so
// http.ResponseController finds both Flush and SetWriteDeadline.
type countingWriter struct {
	http.ResponseWriter
	writes, flushes, bytes *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	n, err := w.ResponseWriter.Write(p)
	w.bytes.Add(int64(n))
	return n, err
}

func (w *countingWriter) FlushError() error {
	w.flushes.Add(1)
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter is a flushable ResponseWriter without deadline support that
// keeps what is written; safe for concurrent reads of its counters.
type discardWriter struct {
	header  http.Header
	writes  atomic.Int64
	flushes atomic.Int64
	keep    bool
	buf     bytes.Buffer // only when keep; read after Run returned
	failAt  int64        // if > 0, the failAt-th Write fails with errBroken
}

var errBroken = errors.New("broken pipe (test)")

func (w *discardWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *discardWriter) WriteHeader(int) {}

func (w *discardWriter) Write(p []byte) (int, error) {
	if n := w.writes.Add(1); w.failAt > 0 && n >= w.failAt {
		return 0, errBroken
	}
	if w.keep {
		w.buf.Write(p)
	}
	return len(p), nil
}

func (w *discardWriter) Flush() { w.flushes.Add(1) }
