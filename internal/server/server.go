package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/clientaddr"
	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/defaults"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/sse"
	"github.com/streamer-dev/streamer/internal/startstop"
)

// Dispatcher takes subscribers; *dispatch.Dispatcher implements it.
type Dispatcher interface {
	Subscribe(ctx context.Context, sub dispatch.Subscriber, streams []string, from *cursor.Position, audience []string) (cursor.Position, error)
	Unsubscribe(sub dispatch.Subscriber)
}

// Authorizer decides who may subscribe to and publish on which streams;
// *auth.Authorizer implements it.
type Authorizer interface {
	Subscriber(r *http.Request, streams []string) (auth.Principal, *auth.Error)
	PublishGrant(r *http.Request) (auth.PublishGrant, *auth.Error)
}

var _ Authorizer = (*auth.Authorizer)(nil)

// Counters counts refusals; *metrics.Metrics implements it.
type Counters interface {
	AuthFailed()
	ConnectionRefused(reason string)
}

var _ Counters = (*metrics.Metrics)(nil)

// AddrLimiter bounds the SSE connections of each client address;
// *clientaddr.Limiter implements it.
type AddrLimiter interface {
	Acquire(a netip.Addr) (release func(), ok bool)
}

var _ AddrLimiter = (*clientaddr.Limiter)(nil)

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
	// ShutdownTimeout bounds the drain when Stop is called or Start's
	// context ends (Shutdown takes its deadline from its context).
	// Default 10s.
	ShutdownTimeout time.Duration
	// Listen opens the listening socket; nil means net.ListenConfig.Listen
	// on "tcp". Tests inject listeners that fail.
	Listen func(ctx context.Context, network, addr string) (net.Listener, error)
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

	// Middleware wraps every route, outermost first, before routing
	// (clientaddr's Resolver, CORS).
	Middleware []func(http.Handler) http.Handler

	// Auth authorizes GET /events and POST /publish. nil means no key:
	// every stream is public, and POST /publish follows
	// Publish.AllowAnonymous.
	Auth Authorizer
	// PerAddress, when set, bounds the SSE connections of each client
	// address (the address clientaddr's Resolver middleware stored, else
	// the peer's); beyond it 429 with Retry-After. A slot is held until
	// the stream ends.
	PerAddress AddrLimiter
	// Counters, when set, counts refusals (401/403, connection limits).
	Counters Counters
	// DeliveryLag, when set, observes each live event's time from commit
	// to the write that put it on a subscriber's socket (sse.Options.Lag),
	// once per event per connection.
	DeliveryLag sse.LagObserver

	// Limits on hostile or broken clients. Zero means the default.

	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers; then the connection is closed. Default 10s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers; beyond it 431.
	// Default 64 KiB.
	MaxHeaderBytes int
	// IdleTimeout bounds how long a keep-alive connection may wait for its
	// next request. Default 60s.
	IdleTimeout time.Duration
	// MaxQueryBytes bounds the query string of GET /events; beyond it 414.
	// Default 16 KiB.
	MaxQueryBytes int
	// SendBuffer, when positive, is the SO_SNDBUF of every accepted
	// connection (sendbuffer.go): it bounds the kernel memory a client
	// that stops reading can hold. Zero leaves the kernel's autotuning.
	SendBuffer int

	// After a burst of connections (burstgc.go): once BurstConnections
	// streams were taken over since the last time and arrivals slowed to
	// under a tenth of that per BurstTick, BurstCollect runs. Defaults
	// 1000 (negative: never), 1s and runtime.GC; tests count the calls.
	BurstConnections int
	BurstTick        time.Duration
	BurstCollect     func()
}

// Defaults of the limits in Config.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxQueryBytes     = 16 << 10
)

func (c *Config) setDefaults() {
	defaults.Positive(&c.Heartbeat, 15*time.Second)
	defaults.Positive(&c.Retry, 2*time.Second)
	defaults.Positive(&c.MaxConnections, 10000)
	defaults.Positive(&c.MaxStreams, 32)
	defaults.Positive(&c.ShutdownTimeout, 10*time.Second)
	defaults.Positive(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defaults.Positive(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defaults.Positive(&c.IdleTimeout, DefaultIdleTimeout)
	defaults.Positive(&c.MaxQueryBytes, DefaultMaxQueryBytes)
	c.Publish.setDefaults()
	c.setBurstDefaults()
	if c.PerAddress == nil {
		c.PerAddress = noLimit{}
	}
	if c.Counters == nil {
		c.Counters = noCounters{}
	}
}

type noLimit struct{}

func (noLimit) Acquire(netip.Addr) (func(), bool) { return func() {}, true }

type noCounters struct{}

func (noCounters) AuthFailed()              {}
func (noCounters) ConnectionRefused(string) {}

// Server serves streamer's HTTP interface. It follows the lifecycle contract
// of package startstop: Start listens and serves until Stop, Shutdown or the
// end of Start's context, each of which drains the server.
type Server struct {
	startstop.Base
	cfg      Config
	handler  http.Handler
	preamble []byte // first bytes of every stream
	goodbye  []byte // streamer.shutdown frame
	reauth   []byte // streamer.reauth frame
	auth     Authorizer

	open     streams      // SSE connections being served
	hijacks  atomic.Int64 // streams taken over from net/http, ever (burstgc.go)
	hub      *sse.Hub     // writes the streams of hijacked connections
	draining atomic.Bool  // not ready: draining, stopped, or Serve failed
	// publishSlots holds one token per POST /publish being handled.
	publishSlots chan struct{}
	cur          atomic.Pointer[run]

	mu   sync.Mutex
	addr string // the address of the last run's listener
	err  error  // why the last run ended by itself (Serve failed); nil after Stop
}

// run is the state of one Start..Stop.
type run struct {
	ln       net.Listener
	http     *http.Server
	drainCtx context.Context    // done once the run drains
	drain    context.CancelFunc // ends every stream with a streamer.shutdown event
	gcDone   chan struct{}      // closed when collectAfterBursts returned

	shutdownCtx context.Context // under Server.mu: the deadline Shutdown gave, if any
	drainErr    error           // written before the run's stopped(); read after Stop
}

// New returns a server; Start runs it.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, publishSlots: make(chan struct{}, cfg.Publish.MaxConcurrent)}
	s.preamble = sse.AppendRetry(sse.AppendComment(nil, "streamer"), cfg.Retry)
	s.goodbye = sse.AppendEvent(nil, "", "streamer.shutdown", `{"reason":"server shutting down"}`)
	s.reauth = sse.AppendEvent(nil, "", "streamer.reauth", `{"reason":"token expired"}`)
	s.auth = cfg.Auth
	if s.auth == nil {
		// No key: every stream public, publishing as configured. New
		// fails only on a bad key, JWKS URL or cookie: none here.
		a, err := auth.New(auth.Config{AllowAnonymousPublish: cfg.Publish.AllowAnonymous})
		if err != nil {
			panic(fmt.Sprintf("server: authorizer without keys: %v", err))
		}
		s.auth = a
	}
	s.hub = sse.NewHub(sse.HubOptions{})
	s.handler = s.Routes()
	return s
}

// newHTTPServer returns the net/http server of one run (an http.Server
// cannot serve again after Shutdown).
func (s *Server) newHTTPServer() *http.Server {
	// No ReadTimeout or WriteTimeout: streams are long-lived; POST
	// /publish bounds its own body read, and stream writes have their own
	// deadlines.
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          nil,
	}
}

// Routes returns the HTTP handler.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.cfg.Middleware...)
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
// the background until Stop or Shutdown is called or ctx ends; each drains
// the server (see Shutdown), Stop and ctx within Config.ShutdownTimeout. If
// serving fails, the server drains and stops by itself: Stopped is closed
// and Err returns the failure. A second Start while running does nothing.
func (s *Server) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	listen := s.cfg.Listen
	if listen == nil {
		var lc net.ListenConfig
		listen = lc.Listen
	}
	ln, err := listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		stopped()
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.SendBuffer > 0 {
		ln = sendBufferListener{Listener: ln, bytes: s.cfg.SendBuffer, log: s.cfg.Logger}
	}
	// The hub outlives Start's context: the drain stops it, after the
	// streams said goodbye.
	if err := s.hub.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		stopped()
		return fmt.Errorf("start sse hub: %w", err)
	}
	r := &run{ln: ln, http: s.newHTTPServer()}
	r.drainCtx, r.drain = context.WithCancel(context.Background())
	r.gcDone = make(chan struct{})
	go s.collectAfterBursts(r.drainCtx, r.gcDone) // waited for by the drain
	s.mu.Lock()
	s.addr, s.err = ln.Addr().String(), nil
	s.mu.Unlock()
	s.draining.Store(false)
	s.cur.Store(r)

	served := make(chan error, 1)
	go func() { served <- r.http.Serve(ln) }() // waited for by the run below
	go func() {
		defer stopped()
		started()
		s.run(ctx, r, served)
	}()
	s.cfg.Logger.Info().Str("addr", ln.Addr().String()).Msg("listening")
	return nil
}

// run waits for the end of ctx or a Serve failure, then drains.
func (s *Server) run(ctx context.Context, r *run, served chan error) {
	var cause error
	select {
	case <-ctx.Done():
	case err := <-served:
		// Serve returns only after Shutdown or Close, which only the drain
		// below calls: whatever it returned now is a failure.
		served = nil
		cause = fmt.Errorf("serve http on %s: %w", r.ln.Addr(), err)
		s.draining.Store(true) // not ready from now on
		s.cfg.Logger.Error().Err(err).Msg("http server failed; shutting down")
	}
	s.mu.Lock()
	dctx := r.shutdownCtx
	s.mu.Unlock()
	if dctx == nil {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
	}
	r.drainErr = s.drain(dctx, r, served)
	s.cur.CompareAndSwap(r, nil)
	s.mu.Lock()
	s.err = cause
	s.mu.Unlock()
}

// drain ends the run r: not ready from now on, every stream ends with a
// streamer.shutdown event after what was already queued, the listener
// closes, and the handlers and hijacked streams get until ctx ends to
// finish; then whatever is left is closed. served, if not nil, receives
// Serve's result.
func (s *Server) drain(ctx context.Context, r *run, served chan error) error {
	s.draining.Store(true)
	r.drain()
	<-r.gcDone
	var errs []error
	if err := r.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err), r.http.Close())
	}
	if served != nil {
		<-served // returns at once after Shutdown or Close
	}
	// Hijacked streams are not net/http's: wait for them (and for any
	// handler still writing) to send their goodbye.
	if err := s.open.waitZero(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%d streams still open at the shutdown deadline: %w", s.open.load(), err))
	}
	// Closes what is left of the hijacked streams; a connection hijacked
	// from now on is refused at once.
	s.hub.Stop()
	if n := s.open.load(); n > 0 {
		// Handlers still writing at the deadline: closing their
		// connections makes them return promptly, but Shutdown does not
		// wait beyond its deadline for them.
		_ = r.http.Close()
	}
	return errors.Join(errs...)
}

// streams counts the SSE connections being served, up to a limit, and lets
// the drain wait until none is left.
type streams struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to zero; nil while nobody waits
}

// tryAdd counts one more stream unless limit are open.
func (c *streams) tryAdd(limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= limit {
		return false
	}
	c.n++
	return true
}

func (c *streams) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 && c.zero != nil {
		close(c.zero)
		c.zero = nil
	}
}

func (c *streams) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitZero waits until no stream is open, or until ctx ends.
func (c *streams) waitZero(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.zero == nil {
		c.zero = make(chan struct{})
	}
	zero := c.zero
	c.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Shutdown drains the server like Stop, within ctx instead of
// Config.ShutdownTimeout: not ready from now on, every stream ends with a
// streamer.shutdown event, no new connections are accepted, and Shutdown
// waits for the streams until ctx ends, then closes what is left. It
// returns an error naming what did not finish in time. Safe to call more
// than once and before Start (then it does nothing and returns nil).
func (s *Server) Shutdown(ctx context.Context) error {
	r := s.cur.Load()
	if r != nil {
		s.mu.Lock()
		if r.shutdownCtx == nil {
			r.shutdownCtx = ctx
		}
		s.mu.Unlock()
	}
	s.Stop() // also waits for a run that is ending by itself
	if r == nil {
		return nil
	}
	return r.drainErr
}

// Err returns why the last run ended by itself (serving failed), or nil
// while running and after a Stop, Shutdown or cancellation.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Addr returns the address the server listens on, once started (after a
// stop, the address it listened on).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// OpenStreams returns the number of SSE connections being served.
func (s *Server) OpenStreams() int { return s.open.load() }

// HubStats reports what the hub of hijacked streams holds.
func (s *Server) HubStats() sse.HubStats { return s.hub.Stats() }
