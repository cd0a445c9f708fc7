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

// audiencePublisher is a publisher that can give events an audience.
type audiencePublisher interface {
	// publishAudience is publish with an audience per event: nil for
	// everyone, else the audience's keys joined by commas.
	publishAudience(ctx context.Context, streams, data []string, audience []*string) error
}

// insertAudienceBatch is insertBatch with an audience column; a NULL
// audience stays NULL.
const insertAudienceBatch = `INSERT INTO streamer.events (stream, data, audience)
SELECT s, d, string_to_array(a, ',') FROM unnest($1::text[], $2::text[], $3::text[]) AS t(s, d, a)`

func (p pgPublisher) publishAudience(ctx context.Context, streams, data []string, audience []*string) error {
	_, err := p.pool.Exec(ctx, insertAudienceBatch, streams, data, audience)
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
	counts  map[string]int64     // events published per stream (or restrict's key): the expected n
	padding string
	sent    int64
	batches int64
	rtt     hist.Histogram // of each publish call: the commit's (or the POST's) round trip
	errors  int64
	lastErr error

	// restrict, when set, gives events an audience: the i-th event (from
	// 0), when restrict returns a key for it, is published with audience
	// and numbered in its data under key instead of its stream, so that a
	// client can check the sequence of the events it may see. Its
	// publisher must be an audiencePublisher.
	restrict func(i int64) (key string, audience []string)
	audience []*string // of the batch being built, when restrict is set

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
			if err := p.send(ctx, streams, data); err != nil {
				p.errors++
				p.lastErr = err
			}
			p.rtt.Record(time.Since(t0))
			p.batches++
			// Catch up at once only when a whole tick's worth has fallen
			// due meanwhile (a slow publish): an event or two that came due
			// during the round trip waits for the tick, so that publishing
			// stays one transaction per tick, as the scenarios say (the
			// next event is due every 1 ms at 1,000 events/s, and sending
			// it at once made about two transactions a tick).
			if int64(time.Since(start).Seconds()*p.rate)+1-(p.sent-base) >= p.perTick() {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-stop:
		case <-tick.C:
		}
	}
}

// perTick is how many events fall due in one 5-ms tick, at least one.
func (p *pacer) perTick() int64 {
	return max(int64(p.rate*0.005), 1)
}

// publishN publishes n events in batches of size, as fast as it can.
func (p *pacer) publishN(ctx context.Context, n, size int64) error {
	var streams, data []string
	for done := int64(0); done < n; {
		k := min(size, n-done)
		streams, data = p.batch(streams[:0], data[:0], k)
		if err := p.send(ctx, streams, data); err != nil {
			return err
		}
		done += k
		p.batches++
	}
	return nil
}

// send publishes a batch built by batch.
func (p *pacer) send(ctx context.Context, streams, data []string) error {
	if p.restrict == nil {
		return p.pub.publish(ctx, streams, data)
	}
	ap, ok := p.pub.(audiencePublisher)
	if !ok {
		return fmt.Errorf("publish: %T cannot publish with an audience", p.pub)
	}
	return ap.publishAudience(ctx, streams, data, p.audience)
}

func (p *pacer) batch(streams, data []string, n int64) ([]string, []string) {
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	p.audience = p.audience[:0]
	for range n {
		stamp := now
		if p.stampDue && !p.schedAt.IsZero() {
			due := p.schedAt.Add(time.Duration(float64(p.sent-p.schedBase) / p.rate * float64(time.Second)))
			stamp = strconv.FormatInt(due.UnixNano(), 10)
		}
		s := p.pick(p.sent)
		key := s
		if p.restrict != nil {
			var aud *string
			if k, a := p.restrict(p.sent); k != "" {
				key, aud = k, new(strings.Join(a, ","))
			}
			p.audience = append(p.audience, aud)
		}
		p.sent++
		p.counts[key]++
		d := key + " " + strconv.FormatInt(p.counts[key], 10) + " " + stamp + " "
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
