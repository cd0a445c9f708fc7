package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/server"
)

// recordingPublisher keeps the events of the last Publish call.
type recordingPublisher struct {
	mu     sync.Mutex
	calls  int
	events []batch.Event
}

func (p *recordingPublisher) Publish(_ context.Context, events []batch.Event) ([]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.events = append([]batch.Event(nil), events...)
	ids := make([]int64, len(events))
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return ids, nil
}

// FuzzPublishBody sends any body to POST /publish, with a publisher that
// records what it is given, and checks the handler's decoding against the
// test's own reading of the body (an order-preserving walk of the JSON,
// with encoding/json's case-insensitive field names, the last of duplicate
// keys winning). The answer is never a 5xx; a 200 hands the publisher
// exactly the events of the body, in order; a body the test reads as
// malformed is a 400 with a JSON error and never reaches the publisher.
// Seeds are in testdata/fuzz/FuzzPublishBody.
func FuzzPublishBody(f *testing.F) {
	rec := &recordingPublisher{}
	handler := server.New(server.Config{Publish: server.PublishConfig{
		Publisher:      rec,
		AllowAnonymous: true,
	}}).Routes()

	f.Fuzz(func(t *testing.T, body []byte) {
		rec.mu.Lock()
		rec.calls, rec.events = 0, nil
		rec.mu.Unlock()

		req := httptest.NewRequest(http.MethodPost, "/publish", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)

		rec.mu.Lock()
		calls, got := rec.calls, rec.events
		rec.mu.Unlock()

		want, wellFormed := readBody(body)
		switch w.Code {
		case http.StatusOK:
			require.True(t, wellFormed, "accepted a body the test reads as malformed: %q", body)
			require.Equal(t, 1, calls)
			require.Equal(t, len(want), len(got), "events")
			for i := range want {
				require.Equal(t, want[i], got[i], "event %d", i)
			}
			var reply struct{ IDs []int64 }
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &reply))
			require.Len(t, reply.IDs, len(want))
		case http.StatusBadRequest:
			require.Zero(t, calls, "a refused body reached the publisher")
			var reply struct {
				Error string `json:"error"`
				Rule  string `json:"rule"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &reply), "a 400 has a JSON body: %q", w.Body.String())
			require.NotEmpty(t, reply.Error)
			// A well-formed body may still break a rule (a bad stream name)
			// if the handler checks rules itself; then it must name it. An
			// empty array, or an event with an audience, may be refused.
			if wellFormed && len(want) > 0 && !hasAudience(body) {
				require.NotEmpty(t, reply.Rule, "refused a well-formed body %q: %s", body, reply.Error)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body.String())
		}
	})
}

// fieldNames are the event fields; "audience" (contract: optional) is
// accepted by the test's reading but its value is not checked here.
var fieldNames = []string{"stream", "event", "data", "audience"}

// readBody is the test's reading of a publish body: one event object or an
// array of them, each with string "stream" and "data", an optional string
// or null "event", and nothing else but "audience".
func readBody(body []byte) ([]batch.Event, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, false
	}
	var events []batch.Event
	switch tok {
	case json.Delim('{'):
		e, ok := readEvent(dec)
		if !ok {
			return nil, false
		}
		events = append(events, e)
	case json.Delim('['):
		for dec.More() {
			tok, err := dec.Token()
			if err != nil || tok != json.Delim('{') {
				return nil, false
			}
			e, ok := readEvent(dec)
			if !ok {
				return nil, false
			}
			events = append(events, e)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, false
		}
	default:
		return nil, false
	}
	return events, true
}

// readEvent reads the members of an object whose '{' has been read.
func readEvent(dec *json.Decoder) (batch.Event, bool) {
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return batch.Event{}, false
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return batch.Event{}, false
		}
		name := ""
		for _, f := range fieldNames {
			if strings.EqualFold(key, f) {
				name = f
			}
		}
		if name == "" {
			return batch.Event{}, false
		}
		fields[name] = value // the last of duplicates wins
	}
	if _, err := dec.Token(); err != nil { // '}'
		return batch.Event{}, false
	}
	var e batch.Event
	for _, f := range []struct {
		name     string
		dst      *string
		nullable bool
	}{{"stream", &e.Stream, false}, {"data", &e.Data, false}, {"event", &e.Type, true}} {
		raw, ok := fields[f.name]
		if !ok || string(raw) == "null" {
			if f.nullable {
				continue
			}
			return batch.Event{}, false
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return batch.Event{}, false
		}
	}
	if raw, ok := fields["audience"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &e.Audience); err != nil {
			return batch.Event{}, false
		}
		if len(e.Audience) == 0 {
			e.Audience = nil
		}
	}
	return e, true
}

// hasAudience reports whether any key of body folds to "audience".
func hasAudience(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.EqualFold(s, "audience") {
			return true
		}
	}
}
