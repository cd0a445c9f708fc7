package dispatch

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestDecodeRawMatchesScan: every query a read runs returns rows that
// decodeRaw takes (the fast path is the one used), and decodes them
// exactly as pgx's Scan does: NULL and non-NULL types, audiences NULL,
// of one and of several values, hidden rows, a prune horizon, the LEFT
// JOIN's empty row, and commit times.
func TestDecodeRawMatchesScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(ctx, `INSERT INTO streamer.events (stream, event, data, audience) VALUES
		('s', 't', 'all', NULL), ('s', NULL, 'no type', '{b}'), ('s', 't', 'for b and c', '{b,c}'),
		('u', 'e2', 'ünï', '{"a b",ü}')`)
	require.NoError(t, err)
	pgtest.Tick(t, pool)
	_, err = pool.Exec(ctx, "UPDATE streamer.pruned SET seq = 0, id = 7")
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		query string
		args  []any
	}{
		{"live", readQuery, []any{int64(0), int64(0), 10}},
		{"live, some streams", readStreamsQuery, []any{int64(0), int64(0), 10, []string{"s"}}},
		{"live, nothing after", readQuery, []any{int64(99), int64(0), 10}},
		{"replay", replayQuery, []any{int64(0), int64(0), 10, []string{"b"}}},
		{"replay, some streams", replayStreamsQuery, []any{int64(0), int64(0), 10, []string{"u"}, []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			decode := func(raw bool) []readRow {
				rows, err := pool.Query(ctx, tc.query, tc.args...)
				require.NoError(t, err)
				defer rows.Close()
				require.True(t, rawDecodable(rows.FieldDescriptions()), "the fast path is not taken")
				var got []readRow
				for rows.Next() {
					var r readRow
					if raw {
						require.NoError(t, r.decodeRaw(rows.RawValues()))
					} else {
						require.NoError(t, r.scanRow(rows))
					}
					if !r.ev.committed.IsZero() {
						r.ev.committed = r.ev.committed.UTC() // Scan gives local time
					}
					got = append(got, r)
				}
				require.NoError(t, rows.Err())
				require.NotEmpty(t, got)
				return got
			}
			require.Equal(t, decode(false), decode(true))
		})
	}
}

func TestDecodeTextArray(t *testing.T) {
	t.Parallel()
	header := func(n byte) []byte {
		return []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, n, 0, 0, 0, 1}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want []string
		err  bool
	}{
		{"empty", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25}, []string{}, false},
		{"two", append(header(2), 0, 0, 0, 1, 'a', 0, 0, 0, 0), []string{"a", ""}, false},
		{"NULL element", append(header(1), 0xff, 0xff, 0xff, 0xff), nil, true},
		{"short element", append(header(1), 0, 0, 0, 5, 'a'), nil, true},
		{"missing element", header(2), nil, true},
		{"two dimensions", []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 25}, nil, true},
		{"short header", []byte{0, 0, 0, 1}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeTextArray(tc.b)
			if tc.err {
				require.ErrorIs(t, err, errRowShape)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// BenchmarkReadDecode is a live read of 7 events (one streams-benchmark
// turn) decoded by decodeRaw or by pgx's Scan; cpu-us/op is this
// process's CPU per read (the database's is not counted).
//
//	go test -run XXX -bench ReadDecode -count 3 ./internal/dispatch/
func BenchmarkReadDecode(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	_, err := pool.Exec(ctx, `INSERT INTO streamer.events (stream, data)
		SELECT 's' || g, repeat('x', 200) FROM generate_series(1, 7) g`)
	require.NoError(b, err)
	pgtest.Tick(b, pool)
	for _, raw := range []bool{false, true} {
		name := "Scan"
		if raw {
			name = "Raw"
		}
		b.Run(name, func(b *testing.B) {
			began := cpuTime(b)
			for b.Loop() {
				rows, err := pool.Query(ctx, readQuery, int64(0), int64(0), 500)
				require.NoError(b, err)
				n := 0
				for rows.Next() {
					var r readRow
					if raw {
						err = r.decodeRaw(rows.RawValues())
					} else {
						err = r.scanRow(rows)
					}
					require.NoError(b, err)
					n++
				}
				require.NoError(b, rows.Err())
				require.Equal(b, 7, n)
			}
			b.ReportMetric(float64(cpuTime(b)-began)/float64(b.N)/1e3, "cpu-us/op")
		})
	}
}
