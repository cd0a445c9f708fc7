package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/metrics/metricstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(metrics.Handler(metrics.Sources{
		OpenStreams:       func() int { return 7 },
		LiveSubscribers:   func() int { return 5 },
		LiveStreams:       func() int { return 2 },
		ListenerConnected: func() bool { return true },
		SequencerLeading:  func() bool { return true },
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, want := range []string{
		"streamer_sse_connections 7",
		"streamer_subscribers_live 5",
		"streamer_streams_live 2",
		"streamer_listener_connected 1",
		"streamer_sequencer_leading 1",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		require.Contains(t, string(body), want)
	}
}

func TestNilSourcesAreSkipped(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	metrics.Handler(metrics.Sources{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	for _, gauge := range []string{"streamer_sse_connections", "streamer_subscribers_live", "streamer_streams_live", "streamer_listener_connected", "streamer_sequencer_leading"} {
		require.NotContains(t, rec.Body.String(), gauge)
	}
}

// families gathers m's registry by name.
func families(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// allFamilies gathers a fresh registry that has every source, so that
// every series the package defines is present.
func allFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	return families(t, metrics.New(metrics.Sources{
		OpenStreams: func() int { return 0 }, LiveSubscribers: func() int { return 0 },
		LiveStreams: func() int { return 0 }, ListenerConnected: func() bool { return false },
		SequencerLeading: func() bool { return false },
	}))
}

// value is the counter value, or the histogram's count and sum, of the one
// series of name whose labels include want.
func value(t *testing.T, m *metrics.Metrics, name string, want ...string) (v, sum float64) {
	t.Helper()
	mf, ok := families(t, m)[name]
	require.True(t, ok, "no series %s", name)
	s := metricstest.Find(mf, want...)
	require.NotNil(t, s, "no series %s%v", name, want)
	v, sum, ok = metricstest.Value(s)
	require.True(t, ok, "series %s%v is neither a counter, a gauge nor a histogram", name, want)
	return v, sum
}

// The contract's series, present on a fresh registry (with every source).
var contractSeries = []string{
	"streamer_sse_connections", "streamer_subscribers_live", "streamer_listener_connected",
	"streamer_events_delivered_total", "streamer_slow_consumer_disconnects_total",
	"streamer_replays_total", "streamer_db_reads_total", "streamer_listener_reconnects_total",
	"streamer_publish_events_total", "streamer_auth_failures_total", "streamer_pruned_events_total",
	"streamer_db_read_duration_seconds", "streamer_delivery_lag_seconds", "streamer_publish_batch_events",
}

func TestSeriesNamesHelpAndUnits(t *testing.T) {
	t.Parallel()
	fams := allFamilies(t)
	for _, name := range contractSeries {
		require.Contains(t, fams, name)
	}
	for name, mf := range fams {
		if !strings.HasPrefix(name, "streamer_") {
			continue
		}
		require.NotEmpty(t, mf.GetHelp(), name)
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			require.True(t, strings.HasSuffix(name, "_total"), "counter %s must end in _total", name)
		case dto.MetricType_HISTOGRAM:
			require.True(t, strings.HasSuffix(name, "_seconds") || strings.HasSuffix(name, "_events"),
				"histogram %s must name its unit", name)
		}
	}
}

func TestMethodsMoveTheirSeries(t *testing.T) {
	t.Parallel()
	type want struct {
		name   string
		labels []string
		value  float64 // counter value, or histogram sample count
		sum    float64 // histogram sum
	}
	for _, tc := range []struct {
		name string
		call func(m *metrics.Metrics)
		want []want
	}{
		{"Delivered", func(m *metrics.Metrics) { m.Delivered(7); m.Delivered(0); m.Delivered(3) },
			[]want{{name: "streamer_events_delivered_total", value: 10}}},
		{"Replayed", func(m *metrics.Metrics) { m.Replayed(4) },
			[]want{{name: "streamer_replay_events_total", value: 4}}},
		{"DeliveryLag", func(m *metrics.Metrics) { m.DeliveryLag(250 * time.Millisecond); m.DeliveryLag(-time.Second) },
			[]want{{name: "streamer_delivery_lag_seconds", value: 2, sum: 0.25}}},
		{"ReplayStarted", func(m *metrics.Metrics) { m.ReplayStarted(); m.ReplayStarted() },
			[]want{{name: "streamer_replays_total", value: 2}}},
		{"ReplayPaced", func(m *metrics.Metrics) { m.ReplayPaced(time.Second) },
			[]want{{name: "streamer_replay_pace_wait_seconds", value: 1, sum: 1}}},
		{"ReplayPageCached", func(m *metrics.Metrics) { m.ReplayPageCached() },
			[]want{{name: "streamer_replay_page_cache_hits_total", value: 1}}},
		{"DBRead", func(m *metrics.Metrics) {
			m.DBRead(metrics.ReadLive, 2*time.Second, false)
			m.DBRead(metrics.ReadReplay, time.Second, false)
			m.DBRead(metrics.ReadReplay, time.Second, true)
			m.DBRead("nonsense", time.Second, true)
		}, []want{
			{name: "streamer_db_reads_total", labels: []string{"kind", "live"}, value: 1},
			{name: "streamer_db_reads_total", labels: []string{"kind", "replay"}, value: 2},
			{name: "streamer_db_read_errors_total", labels: []string{"kind", "live"}, value: 0},
			{name: "streamer_db_read_errors_total", labels: []string{"kind", "replay"}, value: 1},
			{name: "streamer_db_reads_total", labels: []string{"kind", "head"}, value: 0},
			{name: "streamer_db_read_duration_seconds", labels: []string{"kind", "live"}, value: 1, sum: 2},
			{name: "streamer_db_read_duration_seconds", labels: []string{"kind", "replay"}, value: 2, sum: 2},
		}},
		{"TickNotes", func(m *metrics.Metrics) {
			m.TickNotes(metrics.NoteApplied, 3)
			m.TickNotes(metrics.NoteRead, 1)
			m.TickNotes(metrics.NoteRead, 0)
			m.TickNotes("nonsense", 1)
		}, []want{
			{name: "streamer_tick_notes_total", labels: []string{"outcome", "applied"}, value: 3},
			{name: "streamer_tick_notes_total", labels: []string{"outcome", "read"}, value: 1},
			{name: "streamer_tick_notes_total", labels: []string{"outcome", "dropped"}, value: 0},
		}},
		{"SlowConsumerDisconnected", func(m *metrics.Metrics) { m.SlowConsumerDisconnected() },
			[]want{{name: "streamer_slow_consumer_disconnects_total", value: 1}}},
		{"ListenerReconnected", func(m *metrics.Metrics) { m.ListenerReconnected() },
			[]want{{name: "streamer_listener_reconnects_total", value: 1}}},
		{"Published", func(m *metrics.Metrics) { m.Published(5); m.Published(100) },
			[]want{
				{name: "streamer_publish_events_total", value: 105},
				{name: "streamer_publish_batch_events", value: 2, sum: 105},
			}},
		{"AuthFailed", func(m *metrics.Metrics) { m.AuthFailed() },
			[]want{{name: "streamer_auth_failures_total", value: 1}}},
		{"ConnectionRefused", func(m *metrics.Metrics) {
			m.ConnectionRefused(metrics.RefusedPerIP)
			m.ConnectionRefused("made up")
		}, []want{
			{name: "streamer_connections_refused_total", labels: []string{"reason", "per_ip"}, value: 1},
			{name: "streamer_connections_refused_total", labels: []string{"reason", "other"}, value: 1},
			{name: "streamer_connections_refused_total", labels: []string{"reason", "capacity"}, value: 0},
		}},
		{"Wrote", func(m *metrics.Metrics) { m.Wrote(3, 120); m.Wrote(1, 9) },
			[]want{
				{name: "streamer_sse_frames_written_total", value: 4},
				{name: "streamer_sse_written_bytes_total", value: 129},
			}},
		{"Pruned", func(m *metrics.Metrics) { m.Pruned(1000); m.Pruned(0) },
			[]want{{name: "streamer_pruned_events_total", value: 1000}}},
		{"SequencerTicked", func(m *metrics.Metrics) {
			m.SequencerTicked(3, 2*time.Millisecond)
			m.SequencerTicked(0, time.Millisecond)
			m.SequencerTicked(0, time.Millisecond)
			m.SequencerTicked(2, time.Millisecond)
		}, []want{
			{name: "streamer_sequencer_ticks_total", labels: []string{"result", "numbered"}, value: 2},
			{name: "streamer_sequencer_ticks_total", labels: []string{"result", "empty"}, value: 2},
			{name: "streamer_sequencer_commits_total", value: 5},
			{name: "streamer_sequencer_tick_duration_seconds", value: 4, sum: 0.005},
		}},
		{"SequencerTookLock", func(m *metrics.Metrics) { m.SequencerTookLock() },
			[]want{{name: "streamer_sequencer_takeovers_total", value: 1}}},
		{"SequencerFailed", func(m *metrics.Metrics) { m.SequencerFailed(); m.SequencerFailed() },
			[]want{{name: "streamer_sequencer_errors_total", value: 2}}},
		{"NotifyQueueUsage", func(m *metrics.Metrics) { m.NotifyQueueUsage(0.5); m.NotifyQueueUsage(0.25) },
			[]want{{name: "streamer_notify_queue_usage", value: 0.25}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(metrics.Sources{})
			tc.call(m)
			for _, w := range tc.want {
				v, sum := value(t, m, w.name, w.labels...)
				require.Equal(t, w.value, v, "%s%v", w.name, w.labels)
				require.InDelta(t, w.sum, sum, 1e-9, "%s%v sum", w.name, w.labels)
			}
		})
	}
}

func TestNilMetricsIsInert(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	require.NotPanics(t, func() {
		m.Delivered(1)
		m.Replayed(1)
		m.DeliveryLag(time.Second)
		m.ReplayStarted()
		m.ReplayPaced(time.Second)
		m.ReplayPageCached()
		m.DBRead(metrics.ReadLive, time.Second, false)
		m.SlowConsumerDisconnected()
		m.ListenerReconnected()
		m.Published(1)
		m.AuthFailed()
		m.ConnectionRefused(metrics.RefusedCapacity)
		m.Wrote(1, 1)
		m.Pruned(1)
		m.SequencerTicked(1, time.Millisecond)
		m.SequencerTookLock()
		m.SequencerFailed()
		m.NotifyQueueUsage(1)
	})
}

// The delivery path's calls, and the sequencer's per tick, allocate
// nothing.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	allocs := testing.AllocsPerRun(1000, func() {
		m.Delivered(64)
		m.DeliveryLag(3 * time.Millisecond)
		m.DBRead(metrics.ReadLive, time.Millisecond, false)
		m.Wrote(4, 512)
		m.SequencerTicked(2, time.Millisecond)
		m.SequencerTicked(0, time.Millisecond)
		m.NotifyQueueUsage(0.1)
	})
	require.Zero(t, allocs)
}
