package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// loadConfig shapes the workload of a fault test.
type loadConfig struct {
	streams     int           // streams "load-0" ... "load-<streams-1>"
	subscribers int           // each on one or two of the streams
	publishers  int           // SQL publishers, each one transaction at a time
	httpPublish int           // publishers through POST /publish, each one request at a time
	interval    time.Duration // between one publisher's transactions
	rollback    float64       // share of transactions rolled back
	connLife    time.Duration // a subscriber drops each connection after between half and 1.5 times this,
	away        time.Duration // stays away up to this long, and resumes
	// unwatched, when not 0, adds to every SQL publisher's transaction an
	// event of this many bytes on a stream nobody subscribes to. An event
	// over 7,849 bytes does not fit in a tick's notifications, so in the
	// ticks mode every tick is read from that event on
	// (migrations/010_tick_parts.sql).
	unwatched int
}

func defaultLoad() loadConfig {
	return loadConfig{
		streams:     4,
		subscribers: 200,
		publishers:  2,
		interval:    10 * time.Millisecond,
		rollback:    0.1,
		connLife:    4 * time.Second,
		away:        time.Second,
	}
}

// load runs publishers inserting with SQL on the test's own (direct) pool
// and subscribers that resume at random through the server, and checks at
// the end that every subscriber received exactly what the database holds
// for its streams, in position order, with the tokens the positions give.
type load struct {
	t       *testing.T
	d       *deployment
	cfg     loadConfig
	streams []string
	start   string // head() before anything was published

	stopPub    chan struct{}
	pubWG      sync.WaitGroup
	pubMu      sync.Mutex
	acked      []string    // data of committed events, as the publishers saw COMMIT (or a 200) succeed
	httpStatus map[int]int // answers to POST /publish other than 200, by status (0: no answer)
	pubErrs    atomic.Int64
	subCtx     context.Context
	stopSubs   context.CancelFunc
	subWG      sync.WaitGroup
	subs       []*loadSub
	client     *http.Client
	stopped    bool
	// calm ends the random drops: from finish on, subscribers stay
	// connected (and reconnect at once when a connection breaks), as real
	// clients do. Dropping at random while the server is behind can
	// starve a subscriber: each connection is dropped before its replay
	// was served.
	calm atomic.Bool
}

// loadSub is one subscriber: what it received and how often it connected.
type loadSub struct {
	streams  []string
	mu       sync.Mutex
	got      []frame
	last     string // Last-Event-ID for the next connection
	connects int    // 200 answers
	refused  int    // failed dials and non-200 answers
	gaps     int    // streamer.gap events (never expected here)
}

// frame is one event as the subscriber received it.
type frame struct{ ID, Data string }

// startLoad starts the subscribers, waits until each has connected once,
// then starts the publishers.
func startLoad(t *testing.T, d *deployment, cfg loadConfig) *load {
	t.Helper()
	l := &load{t: t, d: d, cfg: cfg, start: d.head(t), stopPub: make(chan struct{})}
	for i := range cfg.streams {
		l.streams = append(l.streams, fmt.Sprintf("load-%d", i))
	}
	l.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	l.subCtx, l.stopSubs = context.WithCancel(context.Background())
	for i := range cfg.subscribers {
		s := &loadSub{last: l.start}
		s.streams = []string{l.streams[i%len(l.streams)]}
		if i%2 == 1 {
			s.streams = append(s.streams, l.streams[(i+1)%len(l.streams)])
		}
		slices.Sort(s.streams)
		l.subs = append(l.subs, s)
		l.subWG.Add(1)
		go func() {
			defer l.subWG.Done()
			l.runSub(s, rand.New(rand.NewPCG(uint64(i), 42)))
		}()
	}
	t.Cleanup(l.stop)
	waitFor(t, longWait, "every subscriber to connect", func() bool {
		for _, s := range l.subs {
			s.mu.Lock()
			n := s.connects
			s.mu.Unlock()
			if n == 0 {
				return false
			}
		}
		return true
	})
	for p := range cfg.publishers {
		l.pubWG.Add(1)
		go func() {
			defer l.pubWG.Done()
			l.runPublisher(p, rand.New(rand.NewPCG(uint64(p), 7)))
		}()
	}
	for p := range cfg.httpPublish {
		l.pubWG.Add(1)
		go func() {
			defer l.pubWG.Done()
			l.runHTTPPublisher(p, rand.New(rand.NewPCG(uint64(p), 11)))
		}()
	}
	return l
}

// stop ends publishers and subscribers; safe to call twice.
func (l *load) stop() {
	if l.stopped {
		return
	}
	l.stopped = true
	close(l.stopPub)
	l.pubWG.Wait()
	l.stopSubs()
	l.subWG.Wait()
	l.client.CloseIdleConnections()
}

// published returns how many events the publishers saw committed.
func (l *load) published() int {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	return len(l.acked)
}

// connects returns how many times the subscribers were answered 200.
func (l *load) connects() int {
	n := 0
	for _, s := range l.subs {
		s.mu.Lock()
		n += s.connects
		s.mu.Unlock()
	}
	return n
}

// waitPublished waits until n more events than now have been committed.
func (l *load) waitPublished(n int, timeout time.Duration) {
	l.t.Helper()
	target := l.published() + n
	waitFor(l.t, timeout, fmt.Sprintf("%d more committed events", n), func() bool { return l.published() >= target })
}

// runPublisher inserts 1-3 events per transaction on random streams, rolls
// back some transactions, and records what committed. Errors (the database
// going away) are counted and retried after a pause.
func (l *load) runPublisher(p int, rnd *rand.Rand) {
	l.onTicks(func(n int) bool {
		var streams, data []string
		for k := range 1 + rnd.IntN(3) {
			streams = append(streams, l.streams[rnd.IntN(len(l.streams))])
			data = append(data, fmt.Sprintf("p%d-%d-%d", p, n, k))
		}
		acked := data
		if l.cfg.unwatched > 0 {
			big := fmt.Sprintf("unwatched-p%d-%d-", p, n)
			streams = append(streams, "unwatched")
			data = append(slices.Clip(data), big+strings.Repeat("x", max(0, l.cfg.unwatched-len(big))))
		}
		rollback := rnd.Float64() < l.cfg.rollback
		// Not cancelled by stop: a transaction cut short could still commit
		// and then be missing from acked.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// READ WRITE explicitly: the read-only test makes it the database's
		// default to refuse writes, for the server but not for this test.
		err := pgx.BeginTxFunc(ctx, l.d.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO streamer.events (stream, data)
				SELECT * FROM unnest($1::text[], $2::text[])`, streams, data); err != nil {
				return err
			}
			if rollback {
				return errRollback
			}
			return nil
		})
		cancel()
		switch {
		case err == nil:
			l.pubMu.Lock()
			l.acked = append(l.acked, acked...)
			l.pubMu.Unlock()
		case errors.Is(err, errRollback):
		default:
			l.pubErrs.Add(1)
			select {
			case <-l.stopPub:
				return false
			case <-time.After(100 * time.Millisecond):
			}
		}
		return true
	})
}

var errRollback = errors.New("rolled back on purpose")

// onTicks calls publish(n), n = 0, 1, …, at each tick of the publishing
// interval, until stopPub is closed or publish returns false.
func (l *load) onTicks(publish func(n int) bool) {
	tick := time.NewTicker(l.cfg.interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-l.stopPub:
			return
		case <-tick.C:
		}
		if !publish(n) {
			return
		}
	}
}

// runHTTPPublisher publishes 1-3 events per POST /publish on random streams
// and records those answered 200. Other answers are counted by status; a
// request is never repeated, so each data string is sent once.
func (l *load) runHTTPPublisher(p int, rnd *rand.Rand) {
	l.onTicks(func(n int) bool {
		type event struct {
			Stream string `json:"stream"`
			Data   string `json:"data"`
		}
		var events []event
		for k := range 1 + rnd.IntN(3) {
			events = append(events, event{l.streams[rnd.IntN(len(l.streams))], fmt.Sprintf("h%d-%d-%d", p, n, k)})
		}
		body, err := json.Marshal(events)
		if err != nil {
			panic(err)
		}
		// Not cancelled by stop, like the SQL publishers.
		ctx, cancel := context.WithTimeout(context.Background(), longWait)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.d.url+"/publish", bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		status := 0
		if resp, err := l.client.Do(req); err == nil {
			status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		l.pubMu.Lock()
		if status == http.StatusOK {
			for _, e := range events {
				l.acked = append(l.acked, e.Data)
			}
		} else {
			if l.httpStatus == nil {
				l.httpStatus = map[int]int{}
			}
			l.httpStatus[status]++
		}
		l.pubMu.Unlock()
		return true
	})
}

// connectTimeout bounds the wait for the server's answer to a subscriber.
const connectTimeout = 10 * time.Second

// runSub connects, reads for a random time, drops the connection and
// resumes from its last id, until the load stops.
func (l *load) runSub(s *loadSub, rnd *rand.Rand) {
	failures := 0
	for l.subCtx.Err() == nil {
		life := l.cfg.connLife/2 + time.Duration(rnd.Int64N(int64(l.cfg.connLife)))
		ok := l.connectOnce(l.subCtx, s, life)
		if ok {
			// Away for a while, so that the resume has events to replay.
			failures = 0
			if l.calm.Load() {
				continue
			}
			select {
			case <-l.subCtx.Done():
				return
			case <-time.After(time.Duration(rnd.Int64N(int64(l.cfg.away) + 1))):
			}
			continue
		}
		// Capped exponential backoff with jitter, as an EventSource would
		// wait its retry: the server may be down for a while.
		failures++
		wait := min(50*time.Millisecond<<min(failures, 5), time.Second)
		select {
		case <-l.subCtx.Done():
			return
		case <-time.After(wait/2 + time.Duration(rnd.Int64N(int64(wait)))):
		}
	}
}

// connectOnce makes one connection and reads it for life after the
// server's answer, or until ctx ends or the stream breaks. It reports
// whether the server answered 200. A connection is given connectTimeout to
// answer: a busy machine may take a while.
func (l *load) connectOnce(ctx context.Context, s *loadSub, life time.Duration) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	connecting := time.AfterFunc(connectTimeout, cancel)
	q := url.Values{"stream": s.streams}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.d.url+"/events?"+q.Encode(), http.NoBody)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	req.Header.Set("Last-Event-ID", s.last)
	s.mu.Unlock()
	resp, err := l.client.Do(req)
	if err != nil {
		connecting.Stop()
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		return false
	}
	if !connecting.Stop() {
		return false // answered just as the connect timeout fired
	}
	if !l.calm.Load() {
		lifeTimer := time.AfterFunc(life, cancel)
		defer lifeTimer.Stop()
	}
	s.mu.Lock()
	s.connects++
	s.mu.Unlock()
	for ev, err := range sse.Read(resp.Body, nil) {
		if err != nil {
			break
		}
		switch {
		case ev.Type == "streamer.shutdown":
		case ev.Type == "streamer.gap":
			s.mu.Lock()
			s.gaps++
			s.mu.Unlock()
		case ev.Data == "" && ev.Type == "":
			// The "retry:" block, which go-sse reports; no event here has
			// empty data.
		default:
			s.mu.Lock()
			s.got = append(s.got, frame{ID: ev.LastEventID, Data: ev.Data})
			s.last = ev.LastEventID
			s.mu.Unlock()
		}
	}
	return true
}

// truth returns, per stream, every committed event after the load's start,
// in position order, with its token.
func (l *load) truth() map[string][]frame {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), longWait)
	defer cancel()
	pgtest.Tick(l.t, l.d.pool)
	rows, err := l.d.pool.Query(ctx, `
		SELECT c.seq::text || '.' || e.id::text, e.stream, e.data
		FROM streamer.events e JOIN streamer.commits c ON c.txid = e.txid
		WHERE c.seq > $1::bigint
		ORDER BY c.seq, e.id`, l.start)
	require.NoError(l.t, err)
	out := map[string][]frame{}
	for rows.Next() {
		var f frame
		var stream string
		require.NoError(l.t, rows.Scan(&f.ID, &stream, &f.Data))
		out[stream] = append(out[stream], f)
	}
	require.NoError(l.t, rows.Err())
	return out
}

// expected merges the truth of a subscriber's streams in position order.
func expected(truth map[string][]frame, streams []string) []frame {
	var all []frame
	for _, s := range streams {
		all = append(all, truth[s]...)
	}
	slices.SortFunc(all, func(a, b frame) int { return comparePositions(a.ID, b.ID) })
	return all
}

func comparePositions(a, b string) int {
	pa, errA := cursor.Parse(a)
	pb, errB := cursor.Parse(b)
	if errA != nil || errB != nil {
		panic(fmt.Sprintf("bad tokens %q %q", a, b))
	}
	switch {
	case pa.Less(pb):
		return -1
	case pb.Less(pa):
		return 1
	}
	return 0
}

// finish stops the publishers, waits until every subscriber has caught up
// with the database, stops the subscribers, and requires each to have
// received exactly the committed events of its streams, in order, once;
// and every event whose COMMIT succeeded to be in the database.
func (l *load) finish(catchUp time.Duration) {
	t := l.t
	t.Helper()
	close(l.stopPub)
	l.pubWG.Wait()
	l.stopPub = make(chan struct{}) // for stop's close
	l.calm.Store(true)

	truth := l.truth()
	inDB := map[string]bool{}
	total := 0
	for _, frames := range truth {
		for _, f := range frames {
			// Every data string is sent once: twice in the database means
			// a publish was committed twice.
			require.False(t, inDB[f.Data], "event %s is in the database twice", f.Data)
			inDB[f.Data] = true
			total++
		}
	}
	l.pubMu.Lock()
	acked := slices.Clone(l.acked)
	l.pubMu.Unlock()
	for _, data := range acked {
		require.True(t, inDB[data], "event %s was acknowledged (COMMIT succeeded) but is not in the database", data)
	}
	require.NotZero(t, total, "nothing was published")

	want := make([][]frame, len(l.subs))
	for i, s := range l.subs {
		want[i] = expected(truth, s.streams)
	}
	caughtUp := func() bool {
		for i, s := range l.subs {
			s.mu.Lock()
			n := len(s.got)
			s.mu.Unlock()
			if n < len(want[i]) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(catchUp)
	for !caughtUp() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.stopSubs()
	l.subWG.Wait()

	connects, refused, behind := 0, 0, 0
	for i, s := range l.subs {
		connects += s.connects
		refused += s.refused
		if len(s.got) != len(want[i]) {
			behind++
		}
	}
	l.pubMu.Lock()
	httpStatus := maps.Clone(l.httpStatus)
	l.pubMu.Unlock()
	t.Logf("load: %d events committed (%d acknowledged, %d SQL publish errors, POST /publish answers other than 200: %v), %d subscribers (%d not caught up), %d connections, %d refused or failed dials",
		total, len(acked), l.pubErrs.Load(), httpStatus, len(l.subs), behind, connects, refused)
	for i, s := range l.subs {
		require.Zero(t, s.gaps, "subscriber %d got a streamer.gap", i)
		if !slices.Equal(want[i], s.got) {
			t.Logf("subscriber %d: %d connections, %d refused", i, s.connects, s.refused)
		}
		requireExact(t, i, s.streams, want[i], s.got)
	}
}

// requireExact requires got to equal want, reporting the first difference.
func requireExact(t *testing.T, i int, streams []string, want, got []frame) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	n := min(len(want), len(got))
	at := n
	for j := range n {
		if want[j] != got[j] {
			at = j
			break
		}
	}
	lo := max(at-2, 0)
	t.Fatalf("subscriber %d (%v): received %d events, want %d; first difference at %d:\n want[%d:] %v\n  got[%d:] %v",
		i, streams, len(got), len(want), at, lo, want[lo:min(lo+5, len(want))], lo, got[lo:min(lo+5, len(got))])
}
