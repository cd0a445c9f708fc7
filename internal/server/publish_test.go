package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/server"
	"github.com/streamer-dev/streamer/migrations"
)

// publishStack is a server with only POST /publish wired, on loopback,
// and its batcher on a fresh database.
type publishStack struct {
	url     string
	pool    *pgxpool.Pool
	srv     *server.Server
	signals *batch.TestSignals
}

func publishSetup(t *testing.T, bc batch.Config, pc server.PublishConfig) *publishStack {
	t.Helper()
	return publishSetupAuth(t, bc, pc, nil)
}

// publishSetupAuth is publishSetup with an Authorizer (nil: none).
func publishSetupAuth(t *testing.T, bc batch.Config, pc server.PublishConfig, authz server.Authorizer) *publishStack {
	t.Helper()
	ctx := context.Background()
	ps := &publishStack{pool: pgtest.NewPool(t), signals: &batch.TestSignals{}}
	ps.signals.Committing.Init()
	ps.signals.Enqueued.Init()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	bc.Pool, bc.Logger, bc.TestSignals = ps.pool, log, ps.signals
	b := batch.New(bc)
	require.NoError(t, b.Start(ctx))
	t.Cleanup(b.Stop)

	pc.Publisher = b
	ps.srv = server.New(server.Config{Addr: "127.0.0.1:0", Logger: log, Publish: pc, Auth: authz})
	require.NoError(t, ps.srv.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, ps.srv.Shutdown(ctx))
	})
	ps.url = "http://" + ps.srv.Addr() + "/publish"
	return ps
}

type publishReply struct {
	status int
	header http.Header
	IDs    []int64 `json:"ids"`
	Error  string  `json:"error"`
	Index  *int    `json:"index"`
	Field  string  `json:"field"`
	Rule   string  `json:"rule"`
}

func (ps *publishStack) post(t testing.TB, body string) publishReply {
	t.Helper()
	return postWith(t, ps.url, "application/json", body)
}

func postWith(t testing.TB, url, contentType, body string) publishReply {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := publishReply{status: resp.StatusCode, header: resp.Header}
	require.NoError(t, json.Unmarshal(raw, &r), "body: %s", raw)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	return r
}

func (ps *publishStack) count(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, ps.pool.QueryRow(context.Background(), "SELECT count(*) FROM streamer.events").Scan(&n))
	return n
}

// rowOf returns stream, type and data of the event with id.
func (ps *publishStack) rowOf(t testing.TB, id int64) (stream string, typ *string, data string) {
	t.Helper()
	require.NoError(t, ps.pool.QueryRow(context.Background(),
		"SELECT stream, event, data FROM streamer.events WHERE id = $1", id).Scan(&stream, &typ, &data))
	return stream, typ, data
}

var anonymous = server.PublishConfig{AllowAnonymous: true}

func TestPublishHTTP(t *testing.T) {
	t.Parallel()
	ps := publishSetup(t, batch.Config{}, anonymous)

	t.Run("OneObject", func(t *testing.T) {
		r := ps.post(t, `{"stream": "orders:42", "event": "order.paid", "data": "{\"status\":\"paid\"}"}`)
		require.Equal(t, http.StatusOK, r.status, r.Error)
		require.Len(t, r.IDs, 1)
		stream, typ, data := ps.rowOf(t, r.IDs[0])
		require.Equal(t, "orders:42", stream)
		require.Equal(t, "order.paid", *typ)
		require.Equal(t, `{"status":"paid"}`, data)
	})

	t.Run("ArrayInOrderInOneTransaction", func(t *testing.T) {
		var body bytes.Buffer
		body.WriteString("[")
		for i := range 50 {
			if i > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"stream":"s%d","data":"line 1\nline %d"}`, i%3, i)
		}
		body.WriteString("]")
		r := ps.post(t, body.String())
		require.Equal(t, http.StatusOK, r.status, r.Error)
		require.Len(t, r.IDs, 50)
		require.IsIncreasing(t, r.IDs)
		for i, id := range r.IDs {
			stream, typ, data := ps.rowOf(t, id)
			require.Equal(t, fmt.Sprintf("s%d", i%3), stream)
			require.Nil(t, typ)
			require.Equal(t, fmt.Sprintf("line 1\nline %d", i), data)
		}
		var txids int
		require.NoError(t, ps.pool.QueryRow(context.Background(),
			"SELECT count(DISTINCT txid) FROM streamer.events WHERE id = ANY($1)", r.IDs).Scan(&txids))
		require.Equal(t, 1, txids)
	})

	t.Run("EmptyArray", func(t *testing.T) {
		r := ps.post(t, `[]`)
		require.Equal(t, http.StatusOK, r.status)
		require.NotNil(t, r.IDs)
		require.Empty(t, r.IDs)
	})

	// Acceptance: an array with one invalid event stores nothing.
	t.Run("AtomicRejection", func(t *testing.T) {
		before := ps.count(t)
		r := ps.post(t, `[{"stream":"ok","data":"1"},{"stream":"ok","data":"2"},{"stream":"no spaces","data":"3"}]`)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.NotNil(t, r.Index)
		require.Equal(t, 2, *r.Index)
		require.Equal(t, "stream", r.Field)
		require.Equal(t, "stream_name_rule", r.Rule)
		require.Contains(t, r.Error, "stream_name_rule")
		require.Equal(t, before, ps.count(t), "nothing stored")
	})

	t.Run("BadRequests", func(t *testing.T) {
		before := ps.count(t)
		for _, tc := range []struct {
			name, body string
			index      int // -1: none
			field      string
		}{
			{"reserved type", `{"stream":"s","event":"streamer.gap","data":"x"}`, 0, "event"},
			{"type with space", `[{"stream":"s","data":"x"},{"stream":"s","event":"a b","data":"x"}]`, 1, "event"},
			{"missing stream", `[{"stream":"s","data":"x"},{"data":"x"}]`, 1, "stream"},
			{"missing data", `{"stream":"s"}`, 0, "data"},
			{"data not a string", `{"stream":"s","data":{"a":1}}`, 0, "data"},
			{"stream not a string", `[{"stream":1,"data":"x"}]`, 0, "stream"},
			{"unknown field", `{"stream":"s","data":"x","type":"t"}`, 0, "type"},
			{"NUL in data", `{"stream":"s","data":"a\u0000b"}`, 0, "data"},
			{"element not an object", `[{"stream":"s","data":"x"}, 3]`, 1, ""},
			{"not JSON", `stream=s`, -1, ""},
			{"truncated", `[{"stream":"s","data":"x"}`, -1, ""},
			{"trailing data", `{"stream":"s","data":"x"} {}`, -1, ""},
			{"empty", ``, -1, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ps.post(t, tc.body)
				require.Equal(t, http.StatusBadRequest, r.status, r.Error)
				require.NotEmpty(t, r.Error)
				if tc.index < 0 {
					require.Nil(t, r.Index)
				} else {
					require.NotNil(t, r.Index, r.Error)
					require.Equal(t, tc.index, *r.Index)
				}
				require.Equal(t, tc.field, r.Field, r.Error)
			})
		}
		require.Equal(t, before, ps.count(t))
	})

	t.Run("ContentType", func(t *testing.T) {
		r := postWith(t, ps.url, "text/plain", `{"stream":"s","data":"x"}`)
		require.Equal(t, http.StatusUnsupportedMediaType, r.status)
		r = postWith(t, ps.url, "application/json; charset=utf-8", `{"stream":"s","data":"x"}`)
		require.Equal(t, http.StatusOK, r.status)
	})
}

func TestPublishBodyLimit(t *testing.T) {
	t.Parallel()
	ps := publishSetup(t, batch.Config{}, server.PublishConfig{AllowAnonymous: true, MaxBodyBytes: 1024})
	big := `{"stream":"s","data":"` + strings.Repeat("x", 1024) + `"}`
	r := ps.post(t, big)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status)

	// Without a Content-Length, the limit is found while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(big))
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, ps.url, pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Zero(t, ps.count(t))
}

func TestPublishAuthorization(t *testing.T) {
	t.Parallel()

	t.Run("AnonymousOffByDefault", func(t *testing.T) {
		t.Parallel()
		ps := publishSetup(t, batch.Config{}, server.PublishConfig{})
		r := ps.post(t, `{"stream":"s","data":"x"}`)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Contains(t, r.Error, "STREAMER_ALLOW_ANONYMOUS_PUBLISH=true")
		require.Zero(t, ps.count(t))
	})

	t.Run("Token", func(t *testing.T) {
		t.Parallel()
		secret := []byte("0123456789abcdef0123456789abcdef")
		authz, err := auth.New(auth.Config{Secret: secret})
		require.NoError(t, err)
		ps := publishSetupAuth(t, batch.Config{}, server.PublishConfig{}, authz)
		tok, err := auth.Mint(secret, auth.MintOptions{Subject: "svc", Publish: []string{"orders:*"}, TTL: time.Hour})
		require.NoError(t, err)
		post := func(t *testing.T, authorization, body string) publishReply {
			t.Helper()
			req, err := http.NewRequest(http.MethodPost, ps.url, strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			r := publishReply{status: resp.StatusCode, header: resp.Header}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
			return r
		}

		r := post(t, "", `{"stream":"orders:1","data":"x"}`)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"))

		r = post(t, "Bearer "+tok+"x", `{"stream":"orders:1","data":"x"}`)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, `Bearer error="invalid_token"`, r.header.Get("WWW-Authenticate"))

		// One event outside the publish patterns refuses the whole request.
		r = post(t, "Bearer "+tok, `[{"stream":"orders:1","data":"x"},{"stream":"users:1","data":"y"}]`)
		require.Equal(t, http.StatusForbidden, r.status)
		require.Equal(t, `Bearer error="insufficient_scope"`, r.header.Get("WWW-Authenticate"))
		require.Contains(t, r.Error, `"users:1"`)
		require.Zero(t, ps.count(t))

		r = post(t, "Bearer "+tok, `[{"stream":"orders:1","data":"x"},{"stream":"orders:2","data":"y"}]`)
		require.Equal(t, http.StatusOK, r.status, r.Error)
		require.Len(t, r.IDs, 2)
		require.Equal(t, 2, ps.count(t))
	})
}

// Acceptance: when the queue is full, 503 with Retry-After at once.
func TestPublishQueueFull(t *testing.T) {
	t.Parallel()
	// The queue is the batcher's, the same in every mode; the test fills it
	// by stalling COMMITs on the trigger mode's commit-order lock.
	pgtest.SkipUnlessTrigger(t, "the commit-order lock stalling COMMIT")
	ps := publishSetup(t, batch.Config{QueueEvents: 2, MaxInFlight: 1}, anonymous)
	ctx := context.Background()
	lock, err := ps.pool.Acquire(ctx)
	require.NoError(t, err)
	defer lock.Release()
	_, err = lock.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", migrations.LockClass, migrations.CommitLockID) // every publishing COMMIT waits
	require.NoError(t, err)

	var wg sync.WaitGroup
	replies := make(chan publishReply, 2)
	wg.Go(func() { replies <- ps.post(t, `{"stream":"s","data":"first"}`) })
	require.Equal(t, 1, ps.signals.Enqueued.WaitOrTimeout(t))
	ps.signals.Committing.WaitOrTimeout(t) // in COMMIT, out of the queue
	wg.Go(func() { replies <- ps.post(t, `[{"stream":"s","data":"a"},{"stream":"s","data":"b"}]`) })
	require.Equal(t, 2, ps.signals.Enqueued.WaitOrTimeout(t)) // the queue is full
	full := ps.post(t, `{"stream":"s","data":"over"}`)
	require.Equal(t, http.StatusServiceUnavailable, full.status)
	require.NotEmpty(t, full.header.Get("Retry-After"))
	require.Contains(t, full.Error, "full")

	_, err = lock.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", migrations.LockClass, migrations.CommitLockID)
	require.NoError(t, err)
	wg.Wait()
	close(replies)
	for r := range replies {
		require.Equal(t, http.StatusOK, r.status, r.Error)
	}
	require.Equal(t, 3, ps.count(t))
}

// Concurrent requests share transactions, and each request's events
// commit together.
func TestPublishRequestsShareBatches(t *testing.T) {
	t.Parallel()
	ps := publishSetup(t, batch.Config{MaxBatchEvents: 25, MaxDelay: 5 * time.Millisecond}, anonymous)
	const requests, per = 40, 10
	ids := make([][]int64, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			var body strings.Builder
			body.WriteString("[")
			for j := range per {
				if j > 0 {
					body.WriteString(",")
				}
				fmt.Fprintf(&body, `{"stream":"r%d","data":"%d"}`, i, j)
			}
			body.WriteString("]")
			r := ps.post(t, body.String())
			require.Equal(t, http.StatusOK, r.status, r.Error)
			ids[i] = r.IDs
		})
	}
	wg.Wait()
	ctx := context.Background()
	for _, reqIDs := range ids {
		var txids int
		require.NoError(t, ps.pool.QueryRow(ctx,
			"SELECT count(DISTINCT txid) FROM streamer.events WHERE id = ANY($1)", reqIDs).Scan(&txids))
		require.Equal(t, 1, txids, "a request's events commit in one transaction")
	}
	var commits int
	require.NoError(t, ps.pool.QueryRow(ctx, "SELECT count(*) FROM streamer.commits").Scan(&commits))
	require.Less(t, commits, requests, "requests shared transactions")
	require.Equal(t, requests*per, ps.count(t))
}

func TestPublishWhileDraining(t *testing.T) {
	t.Parallel()
	ps := publishSetup(t, batch.Config{}, anonymous)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := ps.srv.Routes()
	require.NoError(t, ps.srv.Shutdown(ctx))
	req, err := http.NewRequest(http.MethodPost, "/publish", strings.NewReader(`{"stream":"s","data":"x"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
}
