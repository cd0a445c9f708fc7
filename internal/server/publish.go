package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/defaults"
)

// Publisher commits a request's events atomically, sharing transactions
// with concurrent requests; *batch.Batcher implements it.
type Publisher interface {
	Publish(ctx context.Context, events []batch.Event) ([]int64, error)
}

var _ Publisher = (*batch.Batcher)(nil)

// PublishConfig configures POST /publish.
type PublishConfig struct {
	// Publisher commits the events; without one POST /publish answers 503.
	Publisher Publisher

	// AllowAnonymous accepts requests without credentials
	// (STREAMER_ALLOW_ANONYMOUS_PUBLISH) when Config.Auth is nil; with an
	// Authorizer, its own configuration decides.
	AllowAnonymous bool

	// MaxBodyBytes bounds a request body; beyond it 413. Default 4 MiB.
	MaxBodyBytes int64

	// Timeout bounds how long a request waits for its commit, retries
	// included, and separately how long reading its body may take.
	// Default 30s.
	Timeout time.Duration

	// MaxConcurrent bounds the requests handled at once; beyond it 503
	// with Retry-After, before the body is read. Default 64.
	MaxConcurrent int
}

// Defaults of PublishConfig.
const (
	DefaultMaxPublishBody = 4 << 20
	DefaultPublishTimeout = 30 * time.Second
	DefaultMaxConcurrent  = 64
)

func (c *PublishConfig) setDefaults() {
	defaults.Positive(&c.MaxBodyBytes, DefaultMaxPublishBody)
	defaults.Positive(&c.Timeout, DefaultPublishTimeout)
	defaults.Positive(&c.MaxConcurrent, DefaultMaxConcurrent)
}

// publishError is a 400's body: which event, which field, which rule.
type publishError struct {
	Error string `json:"error"`
	Index *int   `json:"index,omitempty"`
	Field string `json:"field,omitempty"`
	Rule  string `json:"rule,omitempty"`
}

// eventJSON is one event of a request. Pointers tell missing from empty.
type eventJSON struct {
	Stream *string `json:"stream"`
	Event  *string `json:"event"`
	Data   *string `json:"data"`
	// Audience: absent or null stores NULL (everybody may see the event).
	Audience []string `json:"audience"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	pc := s.cfg.Publish
	if s.draining.Load() {
		writeUnavailable(w, "server is shutting down")
		return
	}
	if pc.Publisher == nil {
		writeUnavailable(w, "publishing is not configured on this server")
		return
	}
	select {
	case s.publishSlots <- struct{}{}:
		defer func() { <-s.publishSlots }()
	default:
		writeUnavailable(w, fmt.Sprintf("more than %d publish requests at once; nothing was published, retry later", pc.MaxConcurrent))
		return
	}
	// Decided from the headers: the body of a request that may publish
	// nothing is never read.
	grant, aerr := s.auth.PublishGrant(r)
	if aerr != nil {
		s.refuseAuth(w, r, s.publishLog(r), aerr)
		return
	}
	// Only application/json: a browser can send other types cross-site
	// without a CORS preflight.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	if r.ContentLength > pc.MaxBodyBytes {
		writeTooLarge(w, pc.MaxBodyBytes)
		return
	}
	// A body trickled in slowly holds a slot: bound the time reading it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(pc.Timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pc.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeTooLarge(w, pc.MaxBodyBytes)
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("body not received within %s", pc.Timeout))
			return
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	events, perr := decodeEvents(body)
	if perr != nil {
		writeJSON(w, http.StatusBadRequest, perr)
		return
	}
	streams := make([]string, len(events))
	for i, e := range events {
		streams[i] = e.Stream
	}
	if aerr := grant.Allow(streams); aerr != nil {
		s.refuseAuth(w, r, s.publishLog(r), aerr)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), pc.Timeout)
	defer cancel()
	ids, err := pc.Publisher.Publish(ctx, events)
	if err != nil {
		s.writePublishError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]int64{"ids": ids})
}

// publishLog is the logger of a POST /publish refusal: with the client's
// address, never its credentials.
func (s *Server) publishLog(r *http.Request) zerolog.Logger {
	return s.cfg.Logger.With().Str("remote", clientAddr(r).String()).Logger()
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
}

func (s *Server) writePublishError(w http.ResponseWriter, r *http.Request, err error) {
	var re *batch.RuleError
	switch {
	case errors.As(err, &re):
		pe := &publishError{Error: re.Error(), Field: re.Field, Rule: re.Rule}
		if re.Index >= 0 {
			pe.Index = &re.Index
		}
		writeJSON(w, http.StatusBadRequest, pe)
	case errors.Is(err, batch.ErrFull):
		writeUnavailable(w, "publish queue is full; nothing was published, retry later")
	case errors.Is(err, batch.ErrClosed):
		writeUnavailable(w, "not accepting publishes (shutting down); nothing was published")
	case errors.Is(err, batch.ErrReadOnly):
		writeUnavailable(w, "the database is read-only (failover in progress?); nothing was published, retry later")
	case errors.Is(err, batch.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "request has more events or bytes than the publish queue holds")
	case errors.Is(err, batch.ErrOutcomeUnknown):
		s.cfg.Logger.Warn().Err(err).Msg("publish: outcome unknown")
		writeError(w, http.StatusGatewayTimeout, "timed out while committing: the events may or may not have been published")
	case r.Context().Err() != nil:
		// The client left; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "request cancelled; nothing was published")
	case errors.Is(err, context.DeadlineExceeded):
		writeUnavailable(w, "timed out waiting for the database; nothing was published")
	default:
		s.cfg.Logger.Error().Err(err).Msg("publish failed")
		writeError(w, http.StatusInternalServerError, "publish failed; nothing was published")
	}
}

// decodeEvents parses a body holding one event object or an array of them.
func decodeEvents(body []byte) ([]batch.Event, *publishError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, &publishError{Error: "empty body: send an event object or an array of them"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var events []batch.Event
	switch trimmed[0] {
	case '{':
		e, perr := decodeEvent(dec, 0)
		if perr != nil {
			return nil, perr
		}
		events = []batch.Event{e}
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, &publishError{Error: "invalid JSON: " + err.Error()}
		}
		for i := 0; dec.More(); i++ {
			e, perr := decodeEvent(dec, i)
			if perr != nil {
				return nil, perr
			}
			events = append(events, e)
		}
		if _, err := dec.Token(); err != nil {
			return nil, &publishError{Error: "invalid JSON: " + err.Error()}
		}
	default:
		return nil, &publishError{Error: "body must be an event object or an array of them"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &publishError{Error: "unexpected data after the JSON value"}
	}
	return events, nil
}

func decodeEvent(dec *json.Decoder, i int) (batch.Event, *publishError) {
	var ej eventJSON
	if err := dec.Decode(&ej); err != nil {
		pe := &publishError{Index: &i, Error: fmt.Sprintf("event %d: invalid JSON: %v", i, err)}
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && strings.HasPrefix(te.Field, "audience"):
			pe.Field = "audience"
			pe.Error = fmt.Sprintf("event %d: audience must be an array of strings (or null)", i)
		case errors.As(err, &te) && te.Field != "":
			pe.Field = te.Field
			pe.Error = fmt.Sprintf("event %d: %s must be a string", i, te.Field)
			if te.Field == "data" {
				pe.Error += " (encode structured data as a JSON string)"
			}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			pe.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			pe.Error = fmt.Sprintf("event %d: unknown field %q: an event has stream, event, data and audience", i, pe.Field)
		case errors.As(err, &te):
			pe.Error = fmt.Sprintf("event %d: must be an object with stream, data and optionally event", i)
		}
		return batch.Event{}, pe
	}
	switch {
	case ej.Stream == nil:
		return batch.Event{}, &publishError{Index: &i, Field: "stream", Error: fmt.Sprintf("event %d: stream is required", i)}
	case ej.Data == nil:
		return batch.Event{}, &publishError{Index: &i, Field: "data", Error: fmt.Sprintf("event %d: data is required (a string, may be empty)", i)}
	}
	e := batch.Event{Stream: *ej.Stream, Data: *ej.Data, Audience: ej.Audience}
	if ej.Event != nil {
		e.Type = *ej.Event
	}
	return e, nil
}
