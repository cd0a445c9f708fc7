package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read at every scrape.
type Sources struct {
	OpenStreams       func() int  // SSE connections being served
	LiveSubscribers   func() int  // subscribers past their replay
	LiveStreams       func() int  // streams with at least one live subscriber
	ListenerConnected func() bool // the LISTEN connection is up
	SequencerLeading  func() bool // this server's sequencer holds the sequencer lock
}

// Read kinds, the values of the kind label of the database read series.
const (
	ReadLive   = "live"   // a live read of the dispatcher
	ReadReplay = "replay" // a replay worker's page
	ReadHead   = "head"   // the head alone (nobody subscribed)
	// ReadSequencer is the leading sequencer's backend PID, looked up when a
	// tick's notification came from another backend.
	ReadSequencer = "sequencer"
)

// Tick note outcomes, the values of the outcome label of
// streamer_tick_notes_total: what the dispatcher did with one notification
// of a tick (ticks mode).
const (
	// NoteApplied: fanned out without a read (or, with nobody subscribed,
	// the head moved).
	NoteApplied = "applied"
	// NoteCovered: the head was already at or past its end, served by an
	// earlier read.
	NoteCovered = "covered"
	// NoteRead: served by a read, because it did not start at the head or
	// left its events out, or because an earlier note of the same wake
	// needed the read.
	NoteRead = "read"
	// NoteUntrusted: not sent by the leading sequencer's backend; read
	// instead.
	NoteUntrusted = "untrusted"
	// NoteDropped: more were waiting than the dispatcher keeps; one read
	// serves them.
	NoteDropped = "dropped"
	// NoteMalformed: the payload did not parse; read instead.
	NoteMalformed = "malformed"
)

// Connection refusal reasons, the values of the reason label of
// streamer_connections_refused_total. Anything else is counted as "other".
const (
	RefusedCapacity = "capacity" // STREAMER_MAX_CONNECTIONS reached (503)
	RefusedPerIP    = "per_ip"   // STREAMER_MAX_CONNECTIONS_PER_IP reached (429)
	RefusedDraining = "draining" // the server is shutting down (503)
	RefusedOther    = "other"
)

// Tick results, the values of the result label of
// streamer_sequencer_ticks_total.
const (
	TickNumbered = "numbered" // the tick numbered at least one transaction
	TickEmpty    = "empty"    // nothing had committed since the last tick
)

// Buckets. Lag and read times span a millisecond to tens of seconds; batch
// sizes powers of two up to the largest batch the batcher makes by default.
var (
	lagBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	readBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
	waitBuckets  = []float64{.001, .01, .1, .25, .5, 1, 2.5, 5, 10}
	// A tick is one round trip: an empty one a fraction of a millisecond.
	tickBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
)

// Metrics holds streamer's collectors on a registry of its own. Its methods
// are the call sites of the other packages, each of which declares the few
// it uses as an interface of its own (dispatch.Metrics, listener.Metrics,
// batch.Metrics); *Metrics satisfies them all. Every method is safe for
// concurrent use and, on the delivery path, costs a few atomic operations
// without a lock or an allocation; a nil *Metrics does nothing.
type Metrics struct {
	reg *prometheus.Registry

	delivered       prometheus.Counter
	replayedEvents  prometheus.Counter
	lag             prometheus.Histogram
	replays         prometheus.Counter
	replayPaceWait  prometheus.Histogram
	replayCacheHits prometheus.Counter
	slowConsumers   prometheus.Counter

	reads      *prometheus.CounterVec
	readsByKey map[string]prometheus.Counter
	readTime   *prometheus.HistogramVec
	timeByKey  map[string]prometheus.Observer
	errsByKey  map[string]prometheus.Counter

	notes map[string]prometheus.Counter

	listenerReconnects prometheus.Counter

	publishEvents prometheus.Counter
	publishBatch  prometheus.Histogram

	authFailures prometheus.Counter
	refused      map[string]prometheus.Counter

	framesWritten prometheus.Counter
	bytesWritten  prometheus.Counter

	pruned prometheus.Counter

	ticksNumbered prometheus.Counter
	ticksEmpty    prometheus.Counter
	tickCommits   prometheus.Counter
	tickTime      prometheus.Histogram
	seqTakeovers  prometheus.Counter
	seqErrors     prometheus.Counter
	notifyQueue   prometheus.Gauge
}

// New registers every series (gauges read from src at scrape time; a nil
// source function is skipped) plus the Go runtime and process collectors.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	registerGauges(reg, src)

	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		reg.MustRegister(h)
		return h
	}
	m := &Metrics{reg: reg}

	m.delivered = counter("streamer_events_delivered_total",
		"Events handed to SSE connections' write queues (live, joined after a replay, or replayed), one per event per connection. Counted per read or replay page, not per frame.")
	m.replayedEvents = counter("streamer_replay_events_total",
		"Of streamer_events_delivered_total, the events handed to connections by replay workers (resumes behind the live head).")
	m.lag = histogram("streamer_delivery_lag_seconds",
		"Seconds from an event's commit (streamer.commits.committed_at, the database clock) to the end of the write that put its frame on a subscriber's socket (this process's clock); observed once per live event per connection it was written to. Replayed events, and frames dropped by a close or a failed write, are not observed.",
		lagBuckets)
	m.replays = counter("streamer_replays_total",
		"Subscriptions that resumed from a position and so began with a replay.")
	m.replayPaceWait = histogram("streamer_replay_pace_wait_seconds",
		"Seconds a replay page waited for the replay rate bound (STREAMER_REPLAY_RATE) before being handed to its connection.",
		waitBuckets)
	m.replayCacheHits = counter("streamer_replay_page_cache_hits_total",
		"Replay pages served from the shared page cache instead of a database read.")
	m.slowConsumers = counter("streamer_slow_consumer_disconnects_total",
		"Connections closed because the client did not read as fast as events arrived (outbound queue bound exceeded, or no write progress within the write timeout).")

	m.reads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamer_db_reads_total",
		Help: "Event reads from the database, by kind: live (the dispatcher, one per page), replay (one per replay page not in the cache), head (the head alone, while nobody is subscribed), sequencer (the leading sequencer's backend, when a tick's notification came from another)."},
		[]string{"kind"})
	m.readTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamer_db_read_duration_seconds",
		Help: "Seconds one event read took, query and rows, by kind (see streamer_db_reads_total); failed reads included.", Buckets: readBuckets},
		[]string{"kind"})
	readErrs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamer_db_read_errors_total",
		Help: "Event reads that failed (an error, or no answer within the dispatcher's 10s read timeout), by kind (see streamer_db_reads_total): a live read is retried after 1s, a replay closes its connection and the client resumes."},
		[]string{"kind"})
	reg.MustRegister(m.reads, m.readTime, readErrs)
	m.readsByKey = make(map[string]prometheus.Counter, 4)
	m.timeByKey = make(map[string]prometheus.Observer, 4)
	m.errsByKey = make(map[string]prometheus.Counter, 4)
	for _, k := range []string{ReadLive, ReadReplay, ReadHead, ReadSequencer} {
		m.readsByKey[k] = m.reads.WithLabelValues(k)
		m.timeByKey[k] = m.readTime.WithLabelValues(k)
		m.errsByKey[k] = readErrs.WithLabelValues(k)
	}

	notes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamer_tick_notes_total",
		Help: "Tick notifications the dispatcher handled (ticks mode), by outcome: applied (fanned out without a read), covered (already served by an earlier read), read (served by a read: not at the head, events left out, or after another note that needed one), untrusted (not from the leading sequencer's backend), dropped (too many waiting), malformed (did not parse)."},
		[]string{"outcome"})
	reg.MustRegister(notes)
	m.notes = make(map[string]prometheus.Counter, 6)
	for _, o := range []string{NoteApplied, NoteCovered, NoteRead, NoteUntrusted, NoteDropped, NoteMalformed} {
		m.notes[o] = notes.WithLabelValues(o)
	}

	m.listenerReconnects = counter("streamer_listener_reconnects_total",
		"Successful LISTEN reconnections after the listener's connection was lost.")

	m.publishEvents = counter("streamer_publish_events_total",
		"Events committed by POST /publish (through the publish batcher). Events inserted with SQL directly are not counted.")
	m.publishBatch = histogram("streamer_publish_batch_events",
		"Events per transaction committed by the publish batcher.", batchBuckets)

	m.authFailures = counter("streamer_auth_failures_total",
		"Requests refused for missing, invalid or insufficient credentials (401 or 403).")
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamer_connections_refused_total",
		Help: "SSE connections refused before streaming, by reason: capacity (max connections), per_ip (max connections per address), draining (shutdown), other."},
		[]string{"reason"})
	reg.MustRegister(refused)
	m.refused = make(map[string]prometheus.Counter, 4)
	for _, r := range []string{RefusedCapacity, RefusedPerIP, RefusedDraining, RefusedOther} {
		m.refused[r] = refused.WithLabelValues(r)
	}

	m.framesWritten = counter("streamer_sse_frames_written_total",
		"SSE frames (events, comments, heartbeats) written to client sockets.")
	m.bytesWritten = counter("streamer_sse_written_bytes_total",
		"Bytes written to SSE client sockets.")

	m.pruned = counter("streamer_pruned_events_total",
		"Events deleted by retention (STREAMER_RETENTION).")

	ticks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamer_sequencer_ticks_total",
		Help: "Ticks this server's sequencer recorded in the ticks ordering mode (calls of streamer.tick()), by result: numbered (it numbered at least one transaction) or empty. Not counted in trigger mode, where the sequencer only asks for the mode."},
		[]string{"result"})
	reg.MustRegister(ticks)
	m.ticksNumbered = ticks.WithLabelValues(TickNumbered)
	m.ticksEmpty = ticks.WithLabelValues(TickEmpty)
	m.tickCommits = counter("streamer_sequencer_commits_total",
		"Publishing transactions numbered by this server's ticks.")
	m.tickTime = histogram("streamer_sequencer_tick_duration_seconds",
		"Seconds one tick took (the round trip of streamer.tick()), empty ticks included; ticks mode only.", tickBuckets)
	m.seqTakeovers = counter("streamer_sequencer_takeovers_total",
		"Times this server's sequencer took the sequencer lock (at start, or after the sequencing server or its connection died).")
	m.seqErrors = counter("streamer_sequencer_errors_total",
		"Errors after which this server's sequencer closed its connection and backed off (connection lost, tick failed).")
	m.notifyQueue = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamer_notify_queue_usage",
		Help: "Fraction of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage()) as this server's sequencer last saw it, while it leads; at 1 every NOTIFY, so every tick and trigger-mode COMMIT, fails."})
	reg.MustRegister(m.notifyQueue)
	return m
}

func registerGauges(reg *prometheus.Registry, src Sources) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	if f := src.OpenStreams; f != nil {
		gauge("streamer_sse_connections", "SSE connections being served.", func() float64 { return float64(f()) })
	}
	if f := src.LiveSubscribers; f != nil {
		gauge("streamer_subscribers_live", "Subscribers receiving live events (replay done).", func() float64 { return float64(f()) })
	}
	if f := src.LiveStreams; f != nil {
		gauge("streamer_streams_live", "Streams with at least one live subscriber.", func() float64 { return float64(f()) })
	}
	boolGauge := func(name, help string, f func() bool) {
		if f != nil {
			gauge(name, help, func() float64 {
				if f() {
					return 1
				}
				return 0
			})
		}
	}
	boolGauge("streamer_listener_connected", "1 while the LISTEN connection is up, else 0.", src.ListenerConnected)
	boolGauge("streamer_sequencer_leading", "1 while this server's sequencer holds the sequencer lock (one server at a time; in trigger mode it only asks for the mode), else 0.", src.SequencerLeading)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the series are on, for tests and for adding
// collectors of one's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns a /metrics handler for src alone.
func Handler(src Sources) http.Handler { return New(src).Handler() }

// Delivered adds n events handed to connections' queues (package dispatch:
// once per live read, per replay join and per replay page).
func (m *Metrics) Delivered(n int) {
	if m != nil && n > 0 {
		m.delivered.Add(float64(n))
	}
}

// Replayed adds n events a replay worker handed to its connection; they
// are reported to Delivered too.
func (m *Metrics) Replayed(n int) {
	if m != nil && n > 0 {
		m.replayedEvents.Add(float64(n))
	}
}

// DeliveryLag observes one event's time from commit to the socket write
// that delivered it to one connection; negative durations (clock skew)
// count as zero. Called by the SSE writers (sse.Options.Lag).
func (m *Metrics) DeliveryLag(d time.Duration) {
	if m != nil {
		m.lag.Observe(max(d, 0).Seconds())
	}
}

// ReplayStarted counts a subscription that begins with a replay.
func (m *Metrics) ReplayStarted() {
	if m != nil {
		m.replays.Inc()
	}
}

// ReplayPaced observes how long a replay page waited for the rate bound.
func (m *Metrics) ReplayPaced(d time.Duration) {
	if m != nil {
		m.replayPaceWait.Observe(d.Seconds())
	}
}

// ReplayPageCached counts a replay page served from the page cache.
func (m *Metrics) ReplayPageCached() {
	if m != nil {
		m.replayCacheHits.Inc()
	}
}

// DBRead counts one read of the given kind (ReadLive, ReadReplay,
// ReadHead, ReadSequencer; anything else is ignored), observes its
// duration, and counts it as an error too when it failed.
func (m *Metrics) DBRead(kind string, d time.Duration, failed bool) {
	if m == nil {
		return
	}
	c, ok := m.readsByKey[kind]
	if !ok {
		return
	}
	c.Inc()
	m.timeByKey[kind].Observe(d.Seconds())
	if failed {
		m.errsByKey[kind].Inc()
	}
}

// TickNotes counts n tick notifications with the given outcome (NoteApplied,
// NoteCovered, ...; anything else is ignored).
func (m *Metrics) TickNotes(outcome string, n int) {
	if m == nil || n <= 0 {
		return
	}
	if c, ok := m.notes[outcome]; ok {
		c.Add(float64(n))
	}
}

// SlowConsumerDisconnected counts a connection closed because its client
// could not keep up. Each close is counted by exactly one call site: the
// dispatcher for a full queue (sse.ErrSlowConsumer from Enqueue), the
// writer for a write that made no progress within the write timeout.
func (m *Metrics) SlowConsumerDisconnected() {
	if m != nil {
		m.slowConsumers.Inc()
	}
}

// ListenerReconnected counts a successful LISTEN after a lost connection.
func (m *Metrics) ListenerReconnected() {
	if m != nil {
		m.listenerReconnects.Inc()
	}
}

// Published counts one committed publish batch of n events.
func (m *Metrics) Published(n int) {
	if m != nil {
		m.publishEvents.Add(float64(n))
		m.publishBatch.Observe(float64(n))
	}
}

// AuthFailed counts one request refused for its credentials.
func (m *Metrics) AuthFailed() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// ConnectionRefused counts an SSE connection refused for reason (one of the
// Refused constants; anything else counts as RefusedOther).
func (m *Metrics) ConnectionRefused(reason string) {
	if m == nil {
		return
	}
	c, ok := m.refused[reason]
	if !ok {
		c = m.refused[RefusedOther]
	}
	c.Inc()
}

// Wrote counts one write batch to a client socket: frames and bytes.
func (m *Metrics) Wrote(frames, bytes int) {
	if m != nil {
		m.framesWritten.Add(float64(frames))
		m.bytesWritten.Add(float64(bytes))
	}
}

// Pruned adds n events deleted by retention.
func (m *Metrics) Pruned(n int64) {
	if m != nil && n > 0 {
		m.pruned.Add(float64(n))
	}
}

// NotifyQueueUsage sets streamer_notify_queue_usage. Called by the leading
// sequencer after each tick or mode check.
func (m *Metrics) NotifyQueueUsage(fraction float64) {
	if m != nil {
		m.notifyQueue.Set(fraction)
	}
}

// SequencerTicked counts one tick in the ticks ordering mode that numbered
// n transactions (0: empty) and observes how long it took. Called by the
// sequencer after each call of streamer.tick() that did not find trigger
// mode.
func (m *Metrics) SequencerTicked(n int, d time.Duration) {
	if m == nil {
		return
	}
	if n > 0 {
		m.ticksNumbered.Inc()
		m.tickCommits.Add(float64(n))
	} else {
		m.ticksEmpty.Inc()
	}
	m.tickTime.Observe(d.Seconds())
}

// SequencerTookLock counts one takeover: the sequencer took the lock.
func (m *Metrics) SequencerTookLock() {
	if m != nil {
		m.seqTakeovers.Inc()
	}
}

// SequencerFailed counts one error after which the sequencer backed off.
func (m *Metrics) SequencerFailed() {
	if m != nil {
		m.seqErrors.Inc()
	}
}
