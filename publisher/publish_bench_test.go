package publisher_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/server"
	"github.com/streamer-dev/streamer/publisher"
)

// benchData is each event's payload: 200 bytes, like the pgbench runs in
// the issue and in internal/dispatch/doc.go.
var benchData = strings.Repeat("x", 200)

// benchEnv is one database with everything the publishing scenarios need,
// so that they are measured in the same run on the same server.
type benchEnv struct {
	pool   *pgxpool.Pool // for the SQL scenarios and truncation
	pub    *publisher.Publisher
	pub0   *publisher.Publisher // with MaxDelay < 0: no wait
	url    string               // POST /publish
	client *http.Client
	one    []byte // a one-event body
	array  []byte // a 100-event body
}

func newBenchEnv(b *testing.B) *benchEnv {
	ctx := context.Background()
	dbURL := pgtest.NewDB(b)
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(b, err)
	cfg.MaxConns = 70
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	// The baseline: a table like streamer.events, without its triggers.
	_, err = pool.Exec(ctx, `CREATE TABLE bench_plain (LIKE streamer.events INCLUDING ALL)`)
	require.NoError(b, err)

	env := &benchEnv{pool: pool}

	// The Go package, on a pool of its own, as a service would have.
	pubPool, err := pgxpool.New(ctx, dbURL)
	require.NoError(b, err)
	b.Cleanup(pubPool.Close)
	env.pub, err = publisher.New(ctx, pubPool, publisher.Config{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, env.pub.Close(ctx)) })
	env.pub0, err = publisher.New(ctx, pubPool, publisher.Config{MaxDelay: -1})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, env.pub0.Close(ctx)) })

	// POST /publish: the server's batcher with the serve defaults.
	srvPool, err := pgxpool.New(ctx, dbURL+"&pool_max_conns=2")
	require.NoError(b, err)
	b.Cleanup(srvPool.Close)
	bat := batch.New(batch.Config{Pool: srvPool, Logger: zerolog.Nop()})
	require.NoError(b, bat.Start(ctx))
	b.Cleanup(bat.Stop)
	srv := server.New(server.Config{Addr: "127.0.0.1:0", Logger: zerolog.Nop(),
		Publish: server.PublishConfig{Publisher: bat, AllowAnonymous: true}})
	require.NoError(b, srv.Start(ctx))
	b.Cleanup(func() { require.NoError(b, srv.Shutdown(ctx)) })
	env.url = "http://" + srv.Addr() + "/publish"
	transport := &http.Transport{MaxIdleConnsPerHost: 128}
	env.client = &http.Client{Transport: transport}
	b.Cleanup(transport.CloseIdleConnections)

	env.one = fmt.Appendf(nil, `{"stream":"bench","data":%q}`, benchData)
	var arr bytes.Buffer
	arr.WriteString("[")
	for i := range 100 {
		if i > 0 {
			arr.WriteString(",")
		}
		fmt.Fprintf(&arr, `{"stream":"bench:%d","data":%q}`, i%10, benchData)
	}
	arr.WriteString("]")
	env.array = arr.Bytes()
	return env
}

func (env *benchEnv) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /publish: %s", resp.Status)
	}
	return nil
}

// scenario publishes perOp events per call.
type scenario struct {
	name  string
	perOp int
	op    func(ctx context.Context, env *benchEnv) error
}

var hundred = func() (streams, data []string) {
	for i := range 100 {
		streams = append(streams, fmt.Sprintf("bench:%d", i%10))
		data = append(data, benchData)
	}
	return streams, data
}

var scenarios = []scenario{
	{"http-1", 1, func(ctx context.Context, env *benchEnv) error { return env.post(ctx, env.one) }},
	{"http-100", 100, func(ctx context.Context, env *benchEnv) error { return env.post(ctx, env.array) }},
	{"go-publish", 1, func(ctx context.Context, env *benchEnv) error {
		_, err := env.pub.Publish(ctx, publisher.Event{Stream: "bench", Data: benchData})
		return err
	}},
	{"go-publish-nodelay", 1, func(ctx context.Context, env *benchEnv) error {
		_, err := env.pub0.Publish(ctx, publisher.Event{Stream: "bench", Data: benchData})
		return err
	}},
	{"sql-insert-1", 1, func(ctx context.Context, env *benchEnv) error {
		_, err := env.pool.Exec(ctx, `INSERT INTO streamer.events (stream, data) VALUES ($1, $2)`, "bench", benchData)
		return err
	}},
	{"sql-100-triggers", 100, func(ctx context.Context, env *benchEnv) error {
		streams, data := hundred()
		_, err := env.pool.Exec(ctx, `INSERT INTO streamer.events (stream, data) SELECT * FROM unnest($1::text[], $2::text[])`, streams, data)
		return err
	}},
	{"baseline-100-no-trigger", 100, func(ctx context.Context, env *benchEnv) error {
		streams, data := hundred()
		_, err := env.pool.Exec(ctx, `INSERT INTO bench_plain (stream, data) SELECT * FROM unnest($1::text[], $2::text[])`, streams, data)
		return err
	}},
}

// BenchmarkPublish measures every way of publishing at 8 and 64
// concurrent publishers, in one run against one server. b.N counts events;
// it reports events/s and the p50 and p99 latency of one call (one event,
// or one array of 100). See docs/benchmarks.md.
func BenchmarkPublish(b *testing.B) {
	env := newBenchEnv(b)
	for _, sc := range scenarios {
		for _, clients := range []int{8, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", sc.name, clients), func(b *testing.B) {
				env.run(b, sc, clients)
			})
		}
	}
}

func (env *benchEnv) run(b *testing.B, sc scenario, clients int) {
	ctx := context.Background()
	_, err := env.pool.Exec(ctx, "TRUNCATE streamer.events, streamer.commits, bench_plain")
	require.NoError(b, err)
	ops := (b.N + sc.perOp - 1) / sc.perOp
	var next atomic.Int64
	latencies := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(ops) {
				t0 := time.Now()
				if err := sc.op(ctx, env); err != nil {
					failed.Store(err)
					return
				}
				latencies[c] = append(latencies[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(ops*sc.perOp)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
