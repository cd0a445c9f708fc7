package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics/metricstest"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// scrape is one parsed GET /metrics.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, base string) scrape {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value returns the value of a gauge or counter, or the sample count of a
// histogram, of the series of name whose labels include the pairs in
// labels; 0 when there is none.
func (s scrape) value(name string, labels ...string) float64 {
	v, _ := s.histogram(name, labels...)
	return v
}

// histogram returns a histogram's sample count and sum (a counter's or
// gauge's value and 0).
func (s scrape) histogram(name string, labels ...string) (count, sum float64) {
	mf, ok := s[name]
	if !ok {
		return 0, 0
	}
	m := metricstest.Find(mf, labels...)
	if m == nil {
		return 0, 0
	}
	count, sum, _ = metricstest.Value(m)
	return count, sum
}

// sseEvent is one event a test client read.
type sseEvent struct{ id, data string }

// subscribeSSE opens GET /events?stream=… (with a Last-Event-ID when
// lastID is not empty) and returns the events it reads; the reading
// goroutine ends, and is waited for, at cleanup.
func subscribeSSE(t testing.TB, base, stream, lastID string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/events?stream="+stream, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	events := make(chan sseEvent, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(events)
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.data != "":
				events <- ev
				ev = sseEvent{}
			}
		}
	})
	t.Cleanup(func() {
		resp.Body.Close()
		wg.Wait()
	})
	return events
}

func nextEvent(t testing.TB, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "stream ended")
		return ev
	case <-time.After(testsignal.Timeout):
		t.Fatal("no event arrived")
		return sseEvent{}
	}
}

// startServe runs serve in this process on a fresh database until the test
// ends and returns its base URL once it is ready.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	return startServeOn(t, pgtest.NewDB(t), nil, args...)
}

// startServeOn is startServe on the database at dbURL, with tune (when not
// nil) applied to the configuration.
func startServeOn(t testing.TB, dbURL string, tune func(*serveConfig), args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	var cfg serveConfig
	s := cfg.bind(io.Discard)
	require.NoError(t, s.parse(append([]string{"--database-url", dbURL, "--addr", addr}, args...), ""))
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	base := "http://" + addr
	require.Eventually(t, func() bool { return isReady(base) }, testsignal.Timeout, 20*time.Millisecond, "server never became ready")
	return base
}

// isReady reports whether GET base/readyz answers 200.
func isReady(base string) bool {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// postEvents publishes n events on stream in one POST /publish, with the
// data first, first+1, ..., and requires a 200.
func postEvents(t testing.TB, base, stream string, first, n int) {
	t.Helper()
	var body []map[string]string
	for i := range n {
		body = append(body, map[string]string{"stream": stream, "data": fmt.Sprint(first + i)})
	}
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(string(raw)))
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
}

// TestMetricsAfterWorkload publishes a known number of events over POST
// /publish to a known number of subscribers, resumes one more subscriber
// from the first event, and checks that every series /metrics reports
// moved by exactly the expected amount.
func TestMetricsAfterWorkload(t *testing.T) {
	t.Parallel()
	const (
		subscribers = 3
		requests    = 3
		perRequest  = 4
		events      = requests * perRequest
	)
	base := startServe(t, "--allow-anonymous-publish", "--shutdown-timeout", "2s")

	var clients []<-chan sseEvent
	for range subscribers {
		clients = append(clients, subscribeSSE(t, base, "m", ""))
	}
	require.Eventually(t, func() bool {
		return scrapeMetrics(t, base).value("streamer_subscribers_live") == subscribers
	}, testsignal.Timeout, 10*time.Millisecond, "subscribers never went live")
	before := scrapeMetrics(t, base)
	require.Equal(t, float64(1), before.value("streamer_listener_connected"))

	for r := range requests {
		postEvents(t, base, "m", r*perRequest, perRequest)
	}
	var first string
	for _, c := range clients {
		for i := range events {
			ev := nextEvent(t, c)
			require.Equal(t, fmt.Sprint(i), ev.data)
			if i == 0 {
				first = ev.id
			}
		}
	}
	// One more subscriber resumes after the first event: a replay of the
	// other events.
	resumed := subscribeSSE(t, base, "m", first)
	for i := 1; i < events; i++ {
		require.Equal(t, fmt.Sprint(i), nextEvent(t, resumed).data)
	}

	const delivered = subscribers*events + events - 1
	var after scrape
	require.Eventually(t, func() bool {
		after = scrapeMetrics(t, base)
		return after.value("streamer_events_delivered_total")-before.value("streamer_events_delivered_total") >= delivered &&
			after.value("streamer_subscribers_live") == subscribers+1 &&
			// observed just after the write that the client already read
			after.value("streamer_delivery_lag_seconds")-before.value("streamer_delivery_lag_seconds") >= subscribers*events
	}, testsignal.Timeout, 10*time.Millisecond, "deliveries were never counted")
	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}

	require.Equal(t, float64(delivered), delta("streamer_events_delivered_total"))
	require.Equal(t, float64(events-1), delta("streamer_replay_events_total"))
	require.Equal(t, float64(1), delta("streamer_replays_total"))
	require.Equal(t, float64(events), delta("streamer_publish_events_total"))
	batches, sum := after.histogram("streamer_publish_batch_events")
	require.Equal(t, float64(events), sum)
	require.GreaterOrEqual(t, batches, float64(1))
	require.LessOrEqual(t, batches, float64(requests), "a request's events commit together")
	require.Equal(t, float64(subscribers*events), delta("streamer_delivery_lag_seconds"),
		"one observation per live event per connection it was written to; replayed events none")
	lagCount, lagSum := after.histogram("streamer_delivery_lag_seconds")
	require.Positive(t, lagSum)
	require.Less(t, lagSum/lagCount, float64(testsignal.Timeout/time.Second))
	require.Positive(t, delta("streamer_db_reads_total", "kind", "live"))
	require.Positive(t, delta("streamer_db_reads_total", "kind", "replay"))
	require.Equal(t, after.value("streamer_db_reads_total", "kind", "live"),
		after.value("streamer_db_read_duration_seconds", "kind", "live"), "a duration per read")
	require.Equal(t, float64(subscribers+1), after.value("streamer_sse_connections"))
	require.Equal(t, float64(subscribers+1), after.value("streamer_subscribers_live"))
	require.Equal(t, float64(1), after.value("streamer_streams_live"))
	require.Equal(t, float64(1), after.value("streamer_listener_connected"))
	require.Zero(t, delta("streamer_slow_consumer_disconnects_total"))
	require.Zero(t, delta("streamer_listener_reconnects_total"))
	for _, name := range []string{"streamer_auth_failures_total", "streamer_pruned_events_total"} {
		require.Contains(t, after, name)
	}
}
