package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/pgcluster"
	"github.com/streamer-dev/streamer/migrations"
)

// setUpTimeout bounds finding or starting a server and migrating the
// template; pulling a container image on a slow network is the long case.
const setUpTimeout = 5 * time.Minute

// backend is a running server and how to let go of it.
type backend struct {
	// name says where the server came from, for messages.
	name string
	// connString reaches the maintenance database (normally "postgres").
	connString string
	// stop releases what was started for this binary; nil when nothing was.
	stop func(context.Context) error
	// leakIgnores are goroutines this backend's libraries leave behind.
	leakIgnores []goleak.Option
}

// server is a backend with the binary's admin pool and migrated template.
type server struct {
	backend  backend
	admin    *pgxpool.Pool
	prefix   string // of every database name this binary creates
	template string
	seq      atomic.Int64
}

// setUp finds a server and creates and migrates the template on it.
func setUp() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setUpTimeout)
	defer cancel()

	b, err := findBackend(ctx)
	if err != nil {
		return nil, err
	}
	s, err := newServer(ctx, b)
	if err != nil {
		if b.stop != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			err = errors.Join(err, b.stop(stopCtx))
		}
		return nil, fmt.Errorf("%s: %w", b.name, err)
	}
	return s, nil
}

// findBackend takes the first server source that is available, in the order
// the package documentation gives.
func findBackend(ctx context.Context) (backend, error) {
	var reasons []string

	ok, why := dockerReachable()
	if ok {
		return startContainer(ctx)
	}
	reasons = append(reasons, why)

	for _, env := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(env); v != "" {
			return backend{name: env, connString: v}, nil
		}
	}
	reasons = append(reasons, "TEST_DATABASE_URL and DATABASE_URL are not set")

	b, err := startLocal(ctx)
	var unavailable *pgcluster.UnavailableError
	if errors.As(err, &unavailable) {
		unavailable.Reasons = append(reasons, unavailable.Reasons...)
	}
	return b, err
}

func newServer(ctx context.Context, b backend) (*server, error) {
	cfg, err := pgxpool.ParseConfig(b.connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	// Parallel tests create and drop databases through this pool at once.
	cfg.MaxConns = 8
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open admin pool: %w", err)
	}
	if err := admin.Ping(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}

	suffix := randomHex(4)
	s := &server{
		backend:  b,
		admin:    admin,
		prefix:   "pgtest_" + suffix,
		template: "pgtest_" + suffix + "_tmpl",
	}
	if err := s.createTemplate(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	return s, nil
}

// createTemplate creates the template database and migrates it, closing its
// connection so that it can be cloned.
func (s *server) createTemplate(ctx context.Context) error {
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+quote(s.template)); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	err := s.migrateTemplate(ctx)
	if err != nil {
		err = errors.Join(err, s.dropDB(ctx, s.template))
	}
	return err
}

func (s *server) migrateTemplate(ctx context.Context) error {
	connString, err := withDatabase(s.backend.connString, s.template)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("connect to template database: %w", err)
	}
	err = migrations.Migrate(ctx, conn)
	if err == nil && Ordering() != migrations.Trigger {
		err = migrations.SetOrdering(ctx, conn, Ordering())
	}
	if cerr := conn.Close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("close template connection: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	return nil
}

// createDB clones the template into a database with a new name.
func (s *server) createDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("%s_%d", s.prefix, s.seq.Add(1))
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+quote(name)+" TEMPLATE "+quote(s.template)); err != nil {
		return "", fmt.Errorf("create database %s from template: %w", name, err)
	}
	return name, nil
}

// dropDB drops a database, disconnecting whoever is still connected to it.
func (s *server) dropDB(ctx context.Context, name string) error {
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// close drops the template (on a server that outlives the binary), closes
// the admin pool and stops the backend.
func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()

	var err error
	if s.backend.stop == nil {
		err = s.dropDB(ctx, s.template)
	}
	s.admin.Close()
	if s.backend.stop != nil {
		err = errors.Join(err, s.backend.stop(ctx))
	}
	return err
}

// withDatabase returns connString with its database replaced by db. It
// handles both URL and keyword/value connection strings.
func withDatabase(connString, db string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("parse connection string: %w", err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Del("dbname")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// Keyword/value: a later dbname overrides an earlier one.
	escaped := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db)
	return strings.TrimSpace(connString) + " dbname='" + escaped + "'", nil
}

func quote(name string) string {
	return pgx.Identifier{name}.Sanitize()
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b)
}
