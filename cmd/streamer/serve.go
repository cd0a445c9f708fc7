package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/listener"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/retention"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/server"
	"github.com/streamer-dev/streamer/internal/ui"
	"github.com/streamer-dev/streamer/migrations"
)

var migrateDatabase = migrations.Migrate

var optDatabaseURL = option{"database-url", "DATABASE_URL", "", "Postgres connection string"}

// optTickInterval is the sequencer's Interval (internal/sequencer).
var optTickInterval = option{"tick-interval", "STREAMER_TICK_INTERVAL", "5ms", "ticks mode: how often the sequencing server numbers what committed while events arrive (each tick is a transaction and a NOTIFY: shorter is lower latency for more database CPU); from 1ms to 1s"}

// Bounds of STREAMER_TICK_INTERVAL: below a millisecond ticks cost more
// than they serve (docs/benchmarks.md, "Ordering modes"); above a second
// no subscriber would call it live.
const minTickInterval, maxTickInterval = time.Millisecond, time.Second

// checkTickInterval refuses an interval outside its bounds, naming the
// variable.
func checkTickInterval(d time.Duration) error {
	if d < minTickInterval || d > maxTickInterval {
		return fmt.Errorf("%s=%s: want from %s to %s", optTickInterval.env, d, minTickInterval, maxTickInterval)
	}
	return nil
}

var optOrdering = option{"ordering", "STREAMER_ORDERING", "", "how publishing transactions are ordered: ticks (publishers take no lock; one server numbers commits every few ms) or trigger (each COMMIT numbers itself under a global lock); empty: migrate puts a new database in ticks and leaves an existing one in its mode, serve follows the database"}

// serveConfig is every setting of streamer serve.
type serveConfig struct {
	DatabaseURL     string
	Addr            string
	Heartbeat       time.Duration
	Retry           time.Duration
	MaxConnections  int
	MaxStreams      int
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	AnonPublish     bool
	UI              bool
	DBMaxConns      int
	QueueBytes      int
	WriteTimeout    time.Duration
	ReplayRate      int
	Retention       time.Duration
	Ordering        string
	TickInterval    time.Duration // ticks mode: the sequencer's busy Interval
	SendBuffer      int           // SO_SNDBUF of accepted sockets (sendbuffer.go)

	// POST /publish and its batcher (internal/batch).
	PublishBatchEvents int
	PublishBatchBytes  int
	PublishBatchDelay  time.Duration
	PublishQueueEvents int
	PublishQueueBytes  int
	PublishMaxBody     int
	PublishTimeout     time.Duration
	PublishConcurrent  int

	// Authorization, CORS, client address and per-address limit.
	Auth authFlags

	// listen opens the HTTP listener; nil is TCP on Addr. Not a flag:
	// tests inject listeners that fail.
	listen func(ctx context.Context, network, addr string) (net.Listener, error)
	// tuneSequencer, when set, adjusts the sequencer's configuration. Not
	// a flag: tests set its waits and test signals.
	tuneSequencer func(*sequencer.Config)
	// noPoke, when set, keeps POST /publish from poking the sequencer. Not
	// a flag: the benchmark of what the poke saves sets it.
	noPoke bool
}

func (c *serveConfig) bind(out io.Writer) *settings {
	s := newSettings("streamer serve", out)
	s.String(&c.DatabaseURL, optDatabaseURL)
	s.String(&c.Addr, option{"addr", "STREAMER_ADDR", ":8080", "listen address"})
	s.Duration(&c.Heartbeat, option{"heartbeat", "STREAMER_HEARTBEAT", "15s", "interval of ': ping' comments on idle connections"})
	s.Duration(&c.Retry, option{"retry", "STREAMER_RETRY", "2s", "value sent in the retry: field"})
	s.Int(&c.MaxConnections, option{"max-connections", "STREAMER_MAX_CONNECTIONS", "10000", "SSE connections per process; beyond it 503"})
	s.Int(&c.MaxStreams, option{"max-streams", "STREAMER_MAX_STREAMS", "32", "streams per SSE connection"})
	s.Duration(&c.ShutdownTimeout, option{"shutdown-timeout", "STREAMER_SHUTDOWN_TIMEOUT", "10s", "graceful shutdown bound"})
	s.String(&c.LogLevel, option{"log-level", "STREAMER_LOG_LEVEL", "info", "zerolog level: trace, debug, info, warn, error"})
	s.String(&c.LogFormat, option{"log-format", "STREAMER_LOG_FORMAT", "json", "json or console"})
	s.Bool(&c.AnonPublish, option{"allow-anonymous-publish", "STREAMER_ALLOW_ANONYMOUS_PUBLISH", "false", "accept POST /publish without credentials"})
	s.Bool(&c.UI, option{"ui", "STREAMER_UI", "true", "serve the inspector page at / and /streamer.js"})
	s.Int(&c.DBMaxConns, option{"db-max-conns", "STREAMER_DB_MAX_CONNS", "10", "Postgres pool size (reads and replays), besides the LISTEN connection"})
	s.Int(&c.QueueBytes, option{"queue-bytes", "STREAMER_QUEUE_BYTES", "4194304", "per-connection outbound queue bound in bytes; a client further behind is disconnected and resumes later"})
	s.Duration(&c.WriteTimeout, option{"write-timeout", "STREAMER_WRITE_TIMEOUT", "10s", "deadline of each write to an SSE client"})
	s.Int(&c.ReplayRate, option{"replay-rate", "STREAMER_REPLAY_RATE", "500000", "events per second that all replays (reconnecting clients catching up) may send together, so that live delivery keeps its share of the CPU; 0: no bound"})
	s.Int(&c.PublishBatchEvents, option{"publish-batch-events", "STREAMER_PUBLISH_BATCH_EVENTS", "500", "a publish batch (one transaction) commits at this many events"})
	s.Int(&c.PublishBatchBytes, option{"publish-batch-bytes", "STREAMER_PUBLISH_BATCH_BYTES", "1048576", "a publish batch commits at this many bytes"})
	s.Duration(&c.PublishBatchDelay, option{"publish-batch-delay", "STREAMER_PUBLISH_BATCH_DELAY", "2ms", "a publish batch commits when its oldest event has waited this long (at most: sooner once the last batch's callers are back); 0: no wait, as soon as a batch slot is free"})
	s.Int(&c.PublishQueueEvents, option{"publish-queue-events", "STREAMER_PUBLISH_QUEUE_EVENTS", "100000", "events waiting to be published; beyond it POST /publish answers 503"})
	s.Int(&c.PublishQueueBytes, option{"publish-queue-bytes", "STREAMER_PUBLISH_QUEUE_BYTES", "67108864", "bytes waiting to be published; beyond it POST /publish answers 503"})
	s.Int(&c.PublishMaxBody, option{"publish-max-body", "STREAMER_PUBLISH_MAX_BODY", "4194304", "POST /publish body limit in bytes; beyond it 413"})
	s.Duration(&c.PublishTimeout, option{"publish-timeout", "STREAMER_PUBLISH_TIMEOUT", "30s", "how long POST /publish waits for its commit, retries included (and, separately, for its body)"})
	s.Int(&c.PublishConcurrent, option{"publish-max-concurrent", "STREAMER_PUBLISH_MAX_CONCURRENT", "64", "POST /publish requests handled at once; beyond it 503 with Retry-After, before the body is read"})
	s.Duration(&c.Retention, option{"retention", "STREAMER_RETENTION", "168h", "events committed longer ago are pruned in the background (one server at a time); 0 keeps everything"})
	s.String(&c.Ordering, optOrdering)
	s.Duration(&c.TickInterval, optTickInterval)
	s.Int(&c.SendBuffer, optSendBuffer)
	c.Auth.bind(s)
	return s
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log level %q: %w", level, err)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	s := cfg.bind(stdout)
	if err := s.parse(args, "Usage: streamer serve [flags]"); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL (or --database-url) is required")
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

// serve starts the services in order and runs until ctx ends (nil) or one
// of them stops by itself (its error), then stops them in reverse order
// within the shutdown timeout.
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger) error {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	// Configuration errors first, before anything connects.
	authz, err := cfg.Auth.authorizer(cfg.AnonPublish, log.With().Str("service", "auth").Logger())
	if err != nil {
		return err
	}
	corsMW, err := cfg.Auth.cors()
	if err != nil {
		return err
	}
	resolver, perAddr, err := cfg.Auth.clientAddr()
	if err != nil {
		return err
	}
	if err := checkSendBuffer(cfg.SendBuffer, log); err != nil {
		return err
	}
	if err := checkTickInterval(cfg.TickInterval); err != nil {
		return err
	}
	if !authz.Enabled() {
		log.Warn().Msg("no JWT key configured (STREAMER_JWT_SECRET, STREAMER_JWT_PUBLIC_KEY_FILE, STREAMER_JWT_JWKS_URL): every stream is public")
	}
	poolCfg.MaxConns = int32(max(cfg.DBMaxConns, 2))
	poolCfg.ConnConfig.RuntimeParams["application_name"] = "streamer"
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()

	ordering, err := checkOrdering(ctx, pool, cfg.Ordering)
	if err != nil {
		return err
	}
	log.Info().Str("ordering", string(ordering)).Msg("ordering mode of the database")
	// Always runs: in trigger mode it only asks, once a second, whether the
	// database has been switched to ticks.
	reg := registry.New[dispatch.Subscriber]()
	var srv *server.Server // read by the metrics gauges at scrape time
	var lis *listener.Listener
	var seq *sequencer.Sequencer
	met := metrics.New(metrics.Sources{
		OpenStreams:       func() int { return srv.OpenStreams() },
		LiveSubscribers:   reg.Len,
		LiveStreams:       reg.Streams,
		ListenerConnected: func() bool { return lis.Connected() },
		SequencerLeading:  func() bool { return seq.Leading() },
	})
	disp := dispatch.New(dispatch.Config{
		Pool:     pool,
		Registry: reg,
		// Half the pool: replays must leave the live path (and PostgreSQL
		// CPU) room during a reconnect storm.
		ReplayWorkers: max((int(poolCfg.MaxConns)-2)/2, 1),
		ReplayRate:    float64(cfg.ReplayRate),
		// A connection behind hidden events gets its id-only frame by its
		// next heartbeat, not at every read.
		IDFrameDelay: cfg.Heartbeat,
		Metrics:      met,
		Logger:       log.With().Str("service", "dispatch").Logger(),
	})

	// No local wake: the tick's NOTIFY reaches this server's listener as
	// soon as another would (one read per tick; waking the dispatcher here
	// too made two).
	seqCfg := sequencer.Config{
		DatabaseURL: cfg.DatabaseURL,
		Interval:    cfg.TickInterval,
		Metrics:     met,
		Logger:      log.With().Str("service", "sequencer").Logger(),
	}
	if cfg.tuneSequencer != nil {
		cfg.tuneSequencer(&seqCfg)
	}
	seq = sequencer.New(seqCfg)

	lis = listener.New(listener.Config{
		DatabaseURL: cfg.DatabaseURL,
		Metrics:     met,
		Logger:      log.With().Str("service", "listener").Logger(),
		Waker:       disp,
	})

	var inspector http.Handler
	if cfg.UI {
		inspector = ui.New()
	}
	// Publishing commits on a pool of its own, so that replays cannot
	// starve it: one connection for each of the two batches that may be
	// under way, one to look up the outcome of an interrupted COMMIT.
	pubPool, err := ownPool(ctx, poolCfg, 3, "streamer-publish")
	if err != nil {
		return fmt.Errorf("publish pool: %w", err)
	}
	defer pubPool.Close()
	onCommit := seq.Poke
	if cfg.noPoke {
		onCommit = nil
	}
	delay := cfg.PublishBatchDelay
	if delay == 0 {
		delay = -1 // batch.Config: negative is "no wait"
	}
	pub := batch.New(batch.Config{
		Pool:           pubPool,
		MaxBatchEvents: cfg.PublishBatchEvents,
		MaxBatchBytes:  cfg.PublishBatchBytes,
		MaxDelay:       delay,
		QueueEvents:    cfg.PublishQueueEvents,
		QueueBytes:     cfg.PublishQueueBytes,
		Metrics:        met,
		// A leading sequencer backed off while idle ticks now, not up to
		// IdleInterval later; a no-op otherwise (sequencer.Poke).
		OnCommit: onCommit,
		Logger:   log.With().Str("service", "publish").Logger(),
	})

	// Retention runs on a pool of one connection of its own: a pass holds
	// its connection (and the session lock that makes it the only pruner)
	// for its whole length, and must not take one from the readers.
	var ret *retention.Service
	if cfg.Retention > 0 {
		retPool, err := ownPool(ctx, poolCfg, 1, "streamer-retention")
		if err != nil {
			return fmt.Errorf("retention pool: %w", err)
		}
		defer retPool.Close()
		ret = retention.New(retention.Config{
			Pool:      retPool,
			Retention: cfg.Retention,
			OnPruned:  met.Pruned,
			Logger:    log.With().Str("service", "retention").Logger(),
		})
	} else {
		log.Info().Msg("retention off (STREAMER_RETENTION=0): history is kept for ever")
	}

	srv = server.New(server.Config{
		Addr:           cfg.Addr,
		Heartbeat:      cfg.Heartbeat,
		Retry:          cfg.Retry,
		MaxConnections: cfg.MaxConnections,
		MaxStreams:     cfg.MaxStreams,
		MaxQueueBytes:  cfg.QueueBytes,
		SendBuffer:     cfg.SendBuffer,
		WriteTimeout:   cfg.WriteTimeout,
		// Stop drains within it; runServices calls Shutdown with the same.
		ShutdownTimeout: cfg.ShutdownTimeout,
		Listen:          cfg.listen,
		Dispatcher:      disp,
		DB:              pool,
		Listener:        lis,
		Logger:          log.With().Str("service", "http").Logger(),
		UI:              inspector,
		Metrics:         met.Handler(),
		// The client address first (CORS refusals and logs use it); CORS
		// before routing, so that preflights are answered.
		Middleware: []func(http.Handler) http.Handler{resolver.Middleware, corsMW.Handler},
		Auth:       authz,
		PerAddress: perAddr,
		Counters:   met,
		// Observed by the SSE writers, when an event reaches the socket.
		DeliveryLag: met,
		Publish: server.PublishConfig{
			Publisher:      pub,
			AllowAnonymous: cfg.AnonPublish,
			MaxBodyBytes:   int64(cfg.PublishMaxBody),
			Timeout:        cfg.PublishTimeout,
			MaxConcurrent:  cfg.PublishConcurrent,
		},
	})
	svcs := []service{
		{name: "dispatch", svc: disp, start: func(ctx context.Context) error {
			if err := disp.Start(ctx); err != nil {
				return fmt.Errorf("%w (has `streamer migrate` run?)", err)
			}
			return nil
		}, stop: stopOnly(disp.Stop)},
		{name: "listener", svc: lis, start: lis.Start, stop: stopOnly(lis.Stop)},
		{name: "sequencer", svc: seq, start: seq.Start, stop: stopOnly(seq.Stop)},
		// Before the HTTP server: with a JWKS URL, Start fetches the keys.
		{name: "auth", svc: authz, start: authz.Start, stop: stopOnly(authz.Stop)},
		// The HTTP server, stopped first, refuses publishes from then on
		// and waits for the requests in flight, whose events the batcher
		// is still committing; then the batcher sends whatever is left.
		{name: "publish", svc: pub, start: pub.Start, stop: func(ctx context.Context) error {
			err := pub.Close(ctx)
			pub.Stop()
			return err
		}},
		{name: "http", svc: srv, start: srv.Start, stop: srv.Shutdown},
	}
	if ret != nil {
		// Last: pruning begins once the server serves, and stops first.
		svcs = append(svcs, service{name: "retention", svc: ret, start: ret.Start, stop: stopOnly(ret.Stop)})
	}
	return runServices(ctx, log, cfg.ShutdownTimeout, svcs)
}

// checkOrdering reads the database's ordering mode and, when want names
// one, refuses to serve another: switching waits for every publisher in
// flight, which is streamer migrate's job.
func checkOrdering(ctx context.Context, pool *pgxpool.Pool, want string) (migrations.Ordering, error) {
	wantMode, err := migrations.ParseOrdering(want)
	if err != nil {
		return "", fmt.Errorf("STREAMER_ORDERING: %w", err)
	}
	mode, err := migrations.ReadOrdering(ctx, pool)
	if err != nil {
		return "", fmt.Errorf("%w (has `streamer migrate` run?)", err)
	}
	if wantMode != "" && wantMode != mode {
		return "", fmt.Errorf("the database is in %s ordering mode, STREAMER_ORDERING asks for %s: run `streamer migrate` with STREAMER_ORDERING=%s first", mode, wantMode, wantMode)
	}
	return mode, nil
}

// service is one long-running part of streamer serve.
type service struct {
	name  string
	svc   any // watched when it has Stopped() (and Err()), as startstop services do
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error // drains within ctx, then stops
}

// ownPool opens a pool of a service's own: base's settings, at most
// maxConns connections, named app in pg_stat_activity.
func ownPool(ctx context.Context, base *pgxpool.Config, maxConns int32, app string) (*pgxpool.Pool, error) {
	c := base.Copy()
	c.MaxConns = maxConns
	c.ConnConfig.RuntimeParams["application_name"] = app
	return pgxpool.NewWithConfig(ctx, c)
}

func stopOnly(stop func()) func(context.Context) error {
	return func(context.Context) error { stop(); return nil }
}

// runServices starts svcs in order, runs until ctx ends or a service stops
// by itself, then stops the started ones in reverse order within timeout.
// It returns why it ended early (a start that failed, a service that
// stopped by itself), or nil after ctx ended.
func runServices(ctx context.Context, log zerolog.Logger, timeout time.Duration, svcs []service) error {
	// The services are stopped explicitly, in order, never by ctx.
	runCtx := context.WithoutCancel(ctx)
	var started []service
	stopAll := func() {
		sctx, cancel := context.WithTimeout(runCtx, timeout)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := started[i].stop(sctx); err != nil {
				log.Warn().Err(err).Str("service", started[i].name).Msg("did not stop cleanly")
			}
		}
	}
	for _, s := range svcs {
		if err := s.start(runCtx); err != nil {
			stopAll()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		started = append(started, s)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range started {
		w, ok := s.svc.(interface{ Stopped() <-chan struct{} })
		if !ok {
			continue
		}
		g.Go(func() error {
			select {
			case <-gctx.Done():
				return nil
			case <-w.Stopped():
			}
			err := errors.New("stopped unexpectedly")
			if e, ok := s.svc.(interface{ Err() error }); ok && e.Err() != nil {
				err = e.Err()
			}
			return fmt.Errorf("%s: %w", s.name, err)
		})
	}
	<-gctx.Done()
	err := g.Wait()
	if err != nil {
		log.Error().Err(err).Msg("shutting down after a failure")
	} else {
		log.Info().Dur("timeout", timeout).Msg("shutting down")
	}
	stopAll()
	log.Info().Msg("stopped")
	return err
}
