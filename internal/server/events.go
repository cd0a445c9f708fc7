package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/clientaddr"
	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/rules"
	"github.com/streamer-dev/streamer/internal/sse"
)

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.cfg.Counters.ConnectionRefused(metrics.RefusedDraining)
		writeUnavailable(w, "server is shutting down")
		return
	}
	if n := len(r.URL.RawQuery); n > s.cfg.MaxQueryBytes {
		writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("query string of %d bytes, at most %d", n, s.cfg.MaxQueryBytes))
		return
	}
	streams, err := parseStreams(r.URL.Query()["stream"], s.cfg.MaxStreams)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	from, err := parseResume(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	r0 := s.cur.Load()
	if r0 == nil {
		writeUnavailable(w, "server is not running")
		return
	}
	remote := clientAddr(r)
	log := s.cfg.Logger.With().Strs("streams", streams).Str("remote", remote.String()).Logger()

	// The per-address slot is held until the stream ends, which for a
	// hijacked stream is long after this handler returned: a middleware
	// could not hold it.
	releaseAddr, ok := s.cfg.PerAddress.Acquire(remote)
	if !ok {
		s.cfg.Counters.ConnectionRefused(metrics.RefusedPerIP)
		log.Info().Msg("refused: too many connections from this address")
		clientaddr.WriteTooMany(w, clientaddr.DefaultRetryAfter)
		return
	}
	// Every requested stream is authorised before anything is subscribed.
	p, aerr := s.auth.Subscriber(r, streams)
	if aerr != nil {
		releaseAddr()
		s.refuseAuth(w, r, log, aerr)
		return
	}
	// The keys matched against events' audience arrays; nil for an
	// anonymous connection, which sees only events without an audience.
	var audience []string
	if p.Token {
		audience = p.Audience
	}
	if !s.open.tryAdd(s.cfg.MaxConnections) {
		releaseAddr()
		s.cfg.Counters.ConnectionRefused(metrics.RefusedCapacity)
		writeUnavailable(w, fmt.Sprintf("connection limit of %d reached", s.cfg.MaxConnections))
		return
	}

	conn := sse.NewConn(w, sse.Options{
		MaxQueueBytes: s.cfg.MaxQueueBytes,
		WriteTimeout:  s.cfg.WriteTimeout,
		Heartbeat:     s.cfg.Heartbeat,
		Lag:           s.cfg.DeliveryLag,
	})
	conn.Enqueue(s.preamble) // written first: nothing else is queued yet

	ctx := r.Context()
	start, err := s.cfg.Dispatcher.Subscribe(ctx, conn, streams, from, audience)
	if err != nil {
		conn.Close(err)
		s.open.done()
		releaseAddr()
		writeUnavailable(w, "not accepting subscriptions")
		return
	}
	if p.Token {
		// Who, never the token: its sub and jti.
		lc := log.With().Str("sub", p.Subject)
		if p.ID != "" {
			lc = lc.Str("jti", p.ID)
		}
		log = lc.Logger()
	}
	stopDrain := context.AfterFunc(r0.drainCtx, func() { conn.CloseAfter(s.goodbye) })
	// A connection authorised by a token that expires ends with a
	// streamer.reauth event at exp plus the leeway: one runtime timer, no
	// goroutine.
	stopExpiry := func() bool { return false }
	if at := p.CloseAt(); !at.IsZero() {
		stopExpiry = time.AfterFunc(time.Until(at), func() {
			log.Debug().Msg("token expired: closing with streamer.reauth")
			conn.CloseAfter(s.reauth)
		}).Stop
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")

	log.Debug().Str("from", start.String()).Msg("stream opened")
	began := time.Now()
	// closed runs once per accepted stream, after its Conn closed: on this
	// goroutine, or for a hijacked stream wherever the hub finishes it.
	closed := func(err error) {
		stopDrain()
		stopExpiry()
		s.cfg.Dispatcher.Unsubscribe(conn)
		s.open.done()
		releaseAddr()
		ev := log.Debug()
		if errors.Is(err, sse.ErrSlowConsumer) {
			ev = log.Info()
		}
		ev.Err(err).Dur("duration", time.Since(began)).Msg("stream closed")
	}

	if !s.cfg.NoHijack && r.ProtoMajor == 1 && r.ProtoMinor == 1 {
		// The stream is the hub's from here: this goroutine returns, and
		// net/http keeps no goroutine or buffer for the connection.
		if err := conn.Hijack(s.hub, closed); err != nil {
			conn.Close(err)
			closed(err)
			log.Warn().Err(err).Msg("taking the connection over failed")
			return
		}
		s.hijacks.Add(1)
		return
	}

	w.WriteHeader(http.StatusOK)
	err = conn.Run(ctx)
	conn.Close(err)
	closed(err)
}

// refuseAuth answers an authorization refusal (401 or 403) and counts it.
// The log line names the reason and the redacted URL, never the token.
func (s *Server) refuseAuth(w http.ResponseWriter, r *http.Request, log zerolog.Logger, aerr *auth.Error) {
	s.cfg.Counters.AuthFailed()
	log.Info().Str("reason", string(aerr.Reason)).Str("stream", aerr.Stream).
		Str("method", r.Method).Str("url", auth.RedactRequestURI(r)).Msg("refused: not authorized")
	auth.WriteError(w, aerr)
}

// clientAddr is the request's client address: the one clientaddr's
// Resolver middleware stored, else the peer's.
func clientAddr(r *http.Request) netip.Addr {
	if a, ok := clientaddr.FromContext(r.Context()); ok {
		return a
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// parseStreams validates and de-duplicates the stream parameters.
func parseStreams(values []string, max int) ([]string, error) {
	if len(values) == 0 {
		return nil, errors.New("missing stream parameter: use /events?stream=NAME")
	}
	seen := make(map[string]struct{}, len(values))
	streams := make([]string, 0, len(values))
	for _, v := range values {
		if !rules.Stream(v) {
			return nil, fmt.Errorf("invalid stream name %q: %s", v, rules.StreamChars)
		}
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		streams = append(streams, v)
	}
	if len(streams) > max {
		return nil, fmt.Errorf("too many streams: %d, at most %d per connection", len(streams), max)
	}
	return streams, nil
}

// parseResume reads the resume token: the Last-Event-ID header, else the
// last_event_id query parameter; nil when neither is given.
func parseResume(r *http.Request) (*cursor.Position, error) {
	token := r.Header.Get("Last-Event-ID")
	if token == "" {
		token = r.URL.Query().Get("last_event_id")
	}
	if token == "" {
		return nil, nil
	}
	pos, err := cursor.Parse(token)
	if err != nil {
		return nil, err
	}
	return &pos, nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeUnavailable(w, "draining")
	case s.cfg.Listener != nil && !s.cfg.Listener.Connected():
		writeUnavailable(w, "listener not connected")
	default:
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if s.cfg.DB != nil {
			if err := s.cfg.DB.Ping(ctx); err != nil {
				writeUnavailable(w, "database unreachable: "+err.Error())
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// retryAfter is the Retry-After value of every 503, in seconds.
const retryAfter = 2

func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeError(w, http.StatusServiceUnavailable, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
