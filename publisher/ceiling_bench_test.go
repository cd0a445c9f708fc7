package publisher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// BenchmarkPublishCeiling bounds what any batcher can reach with 64 events
// in flight (64 callers of a synchronous Publish), with no callers, queue or
// error handling at all: transactions of the batcher's INSERT
// (batch.InsertSQL), as fast as one program can send them. It reports events/s; compare with
// BenchmarkPublish's baseline-100-no-trigger at 64 clients.
//
//   - twoTrips: goroutines on their own connections, each repeating BEGIN +
//     INSERT in one round trip and COMMIT in a second (the batcher's shape);
//   - pipelined: one connection in pipeline mode with depth transactions
//     sent ahead (BEGIN, INSERT, COMMIT, Sync each), each refilled as soon
//     as its result is read.
func BenchmarkPublishCeiling(b *testing.B) {
	ctx := context.Background()
	dbURL := pgtest.NewDB(b)
	for _, tc := range []struct {
		shape        string
		depth, batch int
	}{
		{"twoTrips", 2, 32},
		{"pipelined", 1, 64},
		{"pipelined", 2, 32},
	} {
		b.Run(fmt.Sprintf("%s/%dx%d", tc.shape, tc.depth, tc.batch), func(b *testing.B) {
			params := ceilingParams(b, tc.batch)
			transactions := (b.N + tc.batch - 1) / tc.batch
			b.ResetTimer()
			start := time.Now()
			if tc.shape == "twoTrips" {
				ceilingTwoTrips(b, ctx, dbURL, tc.depth, transactions, params)
			} else {
				ceilingPipelined(b, ctx, dbURL, tc.depth, transactions, params)
			}
			b.ReportMetric(float64(transactions*tc.batch)/time.Since(start).Seconds(), "events/s")
		})
	}
}

type ceilingArgs struct {
	streams, types, data, audiences []string
}

func ceilingParams(b *testing.B, n int) ceilingArgs {
	a := ceilingArgs{make([]string, n), make([]string, n), make([]string, n), make([]string, n)}
	for i := range n {
		a.streams[i], a.data[i] = "bench", benchData
	}
	return a
}

func ceilingTwoTrips(b *testing.B, ctx context.Context, dbURL string, workers, transactions int, a ceilingArgs) {
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(b, err)
		b.Cleanup(func() { conn.Close(ctx) })
		conns[i] = conn
	}
	next := make(chan struct{}, transactions)
	for range transactions {
		next <- struct{}{}
	}
	close(next)
	errs := make(chan error, workers)
	for _, conn := range conns {
		go func() {
			for range next {
				var ids []int64
				var txid int64
				trip := &pgx.Batch{}
				trip.Queue("BEGIN")
				trip.Queue(batch.InsertSQL, a.streams, a.types, a.data, a.audiences).QueryRow(func(r pgx.Row) error {
					return r.Scan(&ids, &txid)
				})
				if err := conn.SendBatch(ctx, trip).Close(); err != nil {
					errs <- err
					return
				}
				if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		require.NoError(b, <-errs)
	}
}

func ceilingPipelined(b *testing.B, ctx context.Context, dbURL string, depth, transactions int, a ceilingArgs) {
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(b, err)
	b.Cleanup(func() { conn.Close(ctx) })
	pc := conn.PgConn()
	_, err = pc.Prepare(ctx, "ceiling_insert", batch.InsertSQL, nil)
	require.NoError(b, err)
	encode := func(v []string) []byte {
		buf, err := conn.TypeMap().Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, v, nil)
		require.NoError(b, err)
		return buf
	}
	params := [][]byte{encode(a.streams), encode(a.types), encode(a.data), encode(a.audiences)}
	formats := []int16{pgtype.BinaryFormatCode, pgtype.BinaryFormatCode, pgtype.BinaryFormatCode, pgtype.BinaryFormatCode}

	p := pc.StartPipeline(ctx)
	send := func() {
		p.SendQueryParams("BEGIN", nil, nil, nil, nil)
		p.SendQueryPrepared("ceiling_insert", params, formats, nil)
		p.SendQueryParams("COMMIT", nil, nil, nil, nil)
		p.SendPipelineSync()
		require.NoError(b, p.Flush())
	}
	receive := func() {
		for {
			res, err := p.GetResults()
			require.NoError(b, err)
			switch r := res.(type) {
			case *pgconn.ResultReader:
				_, err := r.Close()
				require.NoError(b, err)
			case *pgconn.PipelineSync:
				return
			}
		}
	}
	sent := 0
	for ; sent < min(depth, transactions); sent++ {
		send()
	}
	for done := 0; done < transactions; done++ {
		receive()
		if sent < transactions {
			send()
			sent++
		}
	}
	require.NoError(b, p.Close())
}
