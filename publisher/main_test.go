package publisher_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// exampleTB lets the examples, which have no *testing.T, take a database
// from pgtest. Failures panic; cleanups are dropped, so the examples'
// database lives as long as the test server (pgtest removes a throwaway
// cluster or container with everything in it).
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                        {}
func (exampleTB) Cleanup(func())                 {}
func (exampleTB) Errorf(format string, a ...any) { panic(format) }
func (exampleTB) FailNow()                       { panic("pgtest failed") }
func (exampleTB) Fatalf(format string, a ...any) { panic(format) }
func (exampleTB) Skipf(format string, a ...any)  { panic(format) }

var exampleDB = sync.OnceValue(func() string { return pgtest.NewDB(exampleTB{}) })

// connect opens a pool on a database migrated with `streamer migrate`.
func connect(ctx context.Context) *pgxpool.Pool {
	pool, err := pgxpool.New(ctx, exampleDB())
	if err != nil {
		panic(err)
	}
	return pool
}
