package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/listener"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/server"
	"github.com/streamer-dev/streamer/migrations"
)

var migrateDatabase = migrations.Migrate

var optDatabaseURL = option{"database-url", "DATABASE_URL", "", "Postgres connection string"}

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

// serve starts the services in order, waits for ctx, then stops them in
// reverse order within the shutdown timeout.
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger) error {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	poolCfg.MaxConns = int32(max(cfg.DBMaxConns, 2))
	poolCfg.ConnConfig.RuntimeParams["application_name"] = "streamer"
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()

	reg := registry.New[dispatch.Subscriber]()
	disp := dispatch.New(dispatch.Config{
		Pool:          pool,
		Registry:      reg,
		ReplayWorkers: max(int(poolCfg.MaxConns)-2, 1),
		Logger:        log.With().Str("service", "dispatch").Logger(),
	})
	if err := disp.Start(ctx); err != nil {
		return fmt.Errorf("%w (has `streamer migrate` run?)", err)
	}
	defer disp.Stop()

	lis := listener.New(listener.Config{
		DatabaseURL: cfg.DatabaseURL,
		Logger:      log.With().Str("service", "listener").Logger(),
		Waker:       disp,
	})
	if err := lis.Start(ctx); err != nil {
		return err
	}
	defer lis.Stop()

	srv := server.New(server.Config{
		Addr:           cfg.Addr,
		Heartbeat:      cfg.Heartbeat,
		Retry:          cfg.Retry,
		MaxConnections: cfg.MaxConnections,
		MaxStreams:     cfg.MaxStreams,
		MaxQueueBytes:  cfg.QueueBytes,
		WriteTimeout:   cfg.WriteTimeout,
		Dispatcher:     disp,
		DB:             pool,
		Listener:       lis,
		Logger:         log.With().Str("service", "http").Logger(),
	})
	if err := srv.Start(ctx); err != nil {
		return err
	}

	<-ctx.Done()
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("http shutdown did not finish cleanly")
	}
	log.Info().Msg("stopped")
	return nil
}
