package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/sse"
)

// Dispatcher takes subscribers; *dispatch.Dispatcher implements it.
type Dispatcher interface {
	Subscribe(ctx context.Context, sub dispatch.Subscriber, streams []string, from *cursor.Position) (cursor.Position, error)
	Unsubscribe(sub dispatch.Subscriber)
}

// Pinger checks that the database is reachable; *pgxpool.Pool implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Listening reports whether the LISTEN connection is up;
// *listener.Listener implements it.
type Listening interface {
	Connected() bool
}

// Config configures a Server.
type Config struct {
	Addr           string        // listen address, e.g. ":8080"
	Heartbeat      time.Duration // idle interval between ": ping" comments
	Retry          time.Duration // sent in the retry field at connect
	MaxConnections int           // open SSE connections; beyond it 503
	MaxStreams     int           // streams per SSE connection
	MaxQueueBytes  int           // per-connection outbound queue bound
	WriteTimeout   time.Duration // deadline of each write to a client
	// NoHijack serves every stream from its handler goroutine, as HTTP/2
	// streams always are, instead of taking HTTP/1.1 connections over.
	NoHijack bool

	Dispatcher Dispatcher
	DB         Pinger
	Listener   Listening
	Logger     zerolog.Logger

	// UI, when set, serves the inspector page at GET /, its assets under
	// GET /ui/, and the JavaScript client at GET /streamer.js.
	UI http.Handler

	Publish PublishConfig // POST /publish (publish.go)

	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
}

func (c *Config) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10000
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 32
	}
	c.Publish.setDefaults()
}

// Server serves streamer's HTTP interface.
type Server struct {
	cfg      Config
	http     *http.Server
	preamble []byte // first bytes of every stream
	goodbye  []byte // streamer.shutdown frame

	open     atomic.Int64   // SSE connections being served
	hub      *sse.Hub       // writes the streams of hijacked connections
	detached sync.WaitGroup // hijacked streams not yet finished
	draining atomic.Bool
	drainCtx context.Context
	drain    context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	served   chan struct{}
	serveErr error
}

// New returns a server; Start runs it.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg}
	s.preamble = sse.AppendRetry(sse.AppendComment(nil, "streamer"), cfg.Retry)
	s.goodbye = sse.AppendEvent(nil, "", "streamer.shutdown", `{"reason":"server shutting down"}`)
	s.drainCtx, s.drain = context.WithCancel(context.Background())
	s.hub = sse.NewHub(sse.HubOptions{})
	s.http = &http.Server{
		Handler:           s.Routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	return s
}

// Routes returns the HTTP handler.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Get("/events", s.handleEvents)
	r.Post("/publish", s.handlePublish)
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.cfg.Metrics != nil {
		r.Get("/metrics", s.cfg.Metrics.ServeHTTP)
	}
	if s.cfg.UI != nil {
		r.Get("/", s.cfg.UI.ServeHTTP)
		r.Get("/streamer.js", s.cfg.UI.ServeHTTP)
		r.Get("/ui/*", s.cfg.UI.ServeHTTP)
	}
	return r
}

// Start listens synchronously (so a bad address fails here) and serves in
// the background.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("server already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.served = make(chan struct{})
	if err := s.hub.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		return fmt.Errorf("start sse hub: %w", err)
	}
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
			s.cfg.Logger.Error().Err(err).Msg("http server stopped")
		}
	}()
	s.cfg.Logger.Info().Str("addr", ln.Addr().String()).Msg("listening")
	return nil
}

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown drains the server: not ready from now on, every stream ends with
// a streamer.shutdown event, no new connections are accepted, and Shutdown
// waits for the handlers until ctx ends. Safe to call more than once and
// before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.drain()
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	if served == nil {
		return nil
	}
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("http shutdown: %w", err), s.http.Close())
	}
	<-served
	// Hijacked streams are not net/http's any more: wait for them to write
	// their goodbye, then stop the hub (which closes what is left).
	waited := make(chan struct{})
	go func() {
		s.detached.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("streams still open at the shutdown deadline: %w", ctx.Err()))
	}
	s.hub.Stop()
	<-waited
	return err
}

// OpenStreams returns the number of SSE connections being served.
func (s *Server) OpenStreams() int { return int(s.open.Load()) }
