package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/hist"
)

// publisher commits a batch of events, in order, before returning.
type publisher interface {
	publish(ctx context.Context, streams, data []string) error
	close()
}

// pgPublisher publishes through SQL: one multi-row INSERT (one transaction)
// per batch, as an application publishing from its own transactions would.
type pgPublisher struct{ pool *pgxpool.Pool }

const insertBatch = `INSERT INTO streamer.events (stream, data) SELECT * FROM unnest($1::text[], $2::text[])`

func (p pgPublisher) close() {}

func (p pgPublisher) publish(ctx context.Context, streams, data []string) error {
	_, err := p.pool.Exec(ctx, insertBatch, streams, data)
	return err
}

// httpPublisher publishes to the baseline's POST /publish, one request per
// batch on a kept-alive connection.
type httpPublisher struct {
	url    string
	client *http.Client
}

func newHTTPPublisher(addr string) httpPublisher {
	return httpPublisher{url: "http://" + addr + "/publish", client: &http.Client{Timeout: 10 * time.Second}}
}

func (p httpPublisher) close() { p.client.CloseIdleConnections() }

func (p httpPublisher) publish(ctx context.Context, streams, data []string) error {
	var body bytes.Buffer
	for i := range streams {
		body.WriteString(streams[i])
		body.WriteByte('\t')
		body.WriteString(data[i])
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, &body)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// pacer publishes at a steady rate: every few milliseconds it sends, as one
// batch, the events that are due. Each event's data is
// "<stream> <n> <unix-ns> <padding>", n counting the stream's events from 1,
// and the timestamp taken just before the batch is sent, so the latency the
// clients measure includes the publishing round trip (the INSERT and its
// COMMIT, or the baseline's POST).
type pacer struct {
	pub     publisher
	rate    float64              // events per second
	pick    func(i int64) string // the stream of the i-th event, from 0
	payload int                  // data bytes per event, at least the header
	counts  map[string]int64     // events published per stream: the expected n
	padding string
	sent    int64
	batches int64
	rtt     hist.Histogram // of each publish call: the commit's (or the POST's) round trip
	errors  int64
	lastErr error

	// stampDue stamps each event of run with the time the schedule had it
	// due instead of the time its batch was sent, so that a publisher that
	// falls behind (a slow COMMIT, a server pushing back) shows in the
	// latency instead of hiding it (coordinated omission). Events go out
	// at most a tick after they are due, which the latency then includes.
	stampDue  bool
	schedAt   time.Time // the start of the current run
	schedBase int64     // sent before it
}

// maxBatch bounds one batch when publishing has fallen behind.
const maxBatch = 1000

func newPacer(pub publisher, rate float64, payload int, pick func(int64) string) *pacer {
	return &pacer{pub: pub, rate: rate, payload: payload, pick: pick, counts: map[string]int64{}}
}

// run publishes for d, or until stop is closed, and returns the time it
// took. A batch in flight is always finished (ctx ends it only when the
// whole run is cancelled), so that every event counted was committed.
func (p *pacer) run(ctx context.Context, d time.Duration, stop <-chan struct{}) time.Duration {
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	base := p.sent
	p.schedAt, p.schedBase = start, base
	defer func() { p.schedAt = time.Time{} }()
	var streams, data []string
	for {
		elapsed := time.Since(start)
		select {
		case <-stop:
			return elapsed
		default:
		}
		if elapsed >= d || ctx.Err() != nil {
			return elapsed
		}
		due := int64(elapsed.Seconds()*p.rate) + 1 - (p.sent - base)
		if due > 0 {
			streams, data = p.batch(streams[:0], data[:0], min(due, maxBatch))
			t0 := time.Now()
			if err := p.pub.publish(ctx, streams, data); err != nil {
				p.errors++
				p.lastErr = err
			}
			p.rtt.Record(time.Since(t0))
			p.batches++
			continue // catch up at once if the publish was slow
		}
		select {
		case <-ctx.Done():
		case <-stop:
		case <-tick.C:
		}
	}
}

// publishN publishes n events in batches of size, as fast as it can.
func (p *pacer) publishN(ctx context.Context, n, size int64) error {
	var streams, data []string
	for done := int64(0); done < n; {
		k := min(size, n-done)
		streams, data = p.batch(streams[:0], data[:0], k)
		if err := p.pub.publish(ctx, streams, data); err != nil {
			return err
		}
		done += k
		p.batches++
	}
	return nil
}

func (p *pacer) batch(streams, data []string, n int64) ([]string, []string) {
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	for range n {
		stamp := now
		if p.stampDue && !p.schedAt.IsZero() {
			due := p.schedAt.Add(time.Duration(float64(p.sent-p.schedBase) / p.rate * float64(time.Second)))
			stamp = strconv.FormatInt(due.UnixNano(), 10)
		}
		s := p.pick(p.sent)
		p.sent++
		p.counts[s]++
		d := s + " " + strconv.FormatInt(p.counts[s], 10) + " " + stamp + " "
		if pad := p.payload - len(d); pad > 0 {
			if len(p.padding) < pad {
				p.padding = strings.Repeat("x", pad)
			}
			d += p.padding[:pad]
		}
		streams = append(streams, s)
		data = append(data, d)
	}
	return streams, data
}

// expected returns a copy of the per-stream counts, for reports.
func (p *pacer) expected() map[string]int64 {
	m := make(map[string]int64, len(p.counts))
	for k, v := range p.counts {
		m[k] = v
	}
	return m
}

// publishLatency returns the p50 and p99 of the publish calls, in ms.
func (p *pacer) publishLatency() (p50, p99 float64) {
	var l hist.Latencies
	l.Add(p.rtt.Snapshot())
	return ms(l.Quantile(0.5)), ms(l.Quantile(0.99))
}
