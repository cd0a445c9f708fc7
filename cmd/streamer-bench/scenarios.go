package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
)

// result is one scenario on one target. Times are in the units their names
// say; CPU figures are the server process's unless named otherwise.
type result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Error    string `json:"error,omitempty"`

	Conns       int     `json:"conns"`   // asked for
	Held        int     `json:"held"`    // open at the end
	Failed      int     `json:"failed"`  // could not be opened
	Dropped     int     `json:"dropped"` // ended by the server or an error
	OpenSeconds float64 `json:"open_seconds"`

	RSSBaseKiB     int64   `json:"rss_base_kib"` // before any connection
	RSSKiB         int64   `json:"rss_kib"`      // at the end of the window
	RSSPeakKiB     int64   `json:"rss_peak_kib"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib"`
	AnonPerConnKiB float64 `json:"anon_per_conn_kib"`

	Window        float64 `json:"window_seconds"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	ProxyCPU      float64 `json:"proxy_cpu_seconds,omitempty"` // a reverse proxy in front (nginx scenario)
	ServerWrites  int64   `json:"server_writes"`               // the server's write system calls (writes.go)
	PGCPU         float64 `json:"pg_cpu_seconds"`
	ClientCPU     float64 `json:"client_cpu_seconds"`
	Published     int64   `json:"published"`
	PublishRate   float64 `json:"publish_rate"`
	PublishErrors int64   `json:"publish_errors"`
	// The publish call's round trip (INSERT and COMMIT, or the baseline's
	// POST), included in every delivery's latency.
	PublishP50Ms float64 `json:"publish_p50_ms"`
	PublishP99Ms float64 `json:"publish_p99_ms"`

	Deliveries         int64   `json:"deliveries"`
	DeliveriesPerSec   float64 `json:"deliveries_per_sec"`
	CPUPerDeliveryUs   float64 `json:"cpu_per_delivery_us"`
	PGCPUPerDeliveryUs float64 `json:"pg_cpu_per_delivery_us"`
	// PGByBackendUs splits the PostgreSQL CPU per delivery by backend role
	// (application_name or backend type): the server's pools
	// ("streamer", "streamer-listener", "streamer-sequencer", …), the
	// tool's publisher ("streamer-bench"), PostgreSQL's own processes.
	PGByBackendUs map[string]float64 `json:"pg_cpu_by_backend_us,omitempty"`

	MinMs float64 `json:"min_ms"` // the fastest delivery: the pipeline's fixed part
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`

	Complete   bool  `json:"complete"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	Reordered  int64 `json:"reordered"`
	Unexpected int64 `json:"unexpected"`
	Leaked     int64 `json:"leaked"` // events a client was not allowed to see (the auth scenarios)
	Gaps       int64 `json:"gaps"`

	DBReads  int64   `json:"db_reads"` // the server's read statements (pg_stat_statements)
	DBReadMs float64 `json:"db_read_ms"`
	// DBStatements are the server's read statements by text (start only).
	DBStatements map[string]int64 `json:"db_statements,omitempty"`
	// Ticks mode (internal/sequencer): ticks that numbered transactions,
	// every call of streamer.tick() (numbering or idle) and their execution
	// time, in the window.
	Ticks     int64   `json:"ticks,omitempty"`
	TickCalls int64   `json:"tick_calls,omitempty"`
	TickMs    float64 `json:"tick_ms,omitempty"`
	// TickNotes is what the server's dispatcher did with the ticks'
	// notifications in the window, by outcome (streamer_tick_notes_total).
	TickNotes map[string]int64 `json:"tick_notes,omitempty"`

	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
	// OtherCPU is the CPU the rest of the machine used during the window,
	// in cores: busy time minus the server's, PostgreSQL's, the clients'
	// and the tool's own. The machine is shared; this is the noise.
	OtherCPU float64 `json:"other_cpu_cores"`

	Replay   *replayFigures   `json:"replay,omitempty"`
	Capacity *capacityFigures `json:"capacity,omitempty"`
	Proxy    *proxyFigures    `json:"proxy,omitempty"`  // the nginx scenario (nginx.go)
	Kernel   *kernelFigures   `json:"kernel,omitempty"` // slow, slow-uncapped (kernelmem.go)
	Burst    *burstFigures    `json:"burst,omitempty"`  // idle-burst (burst.go)
	Notes    []string         `json:"notes,omitempty"`
}

// replayFigures are the replay storm's own measurements.
type replayFigures struct {
	Clients             int     `json:"clients"`
	Behind              int     `json:"behind"`
	AllCaughtUp         bool    `json:"all_caught_up"`
	CatchUpSeconds      float64 `json:"catch_up_seconds"`
	ReplayDeliveries    int64   `json:"replay_deliveries"`
	ReplayPerSec        float64 `json:"replay_deliveries_per_sec"`
	Errors              int     `json:"errors"`        // failed + dropped connections + gap events
	MaxPGConns          int     `json:"max_pg_conns"`  // of the read pool
	MaxPGActive         int     `json:"max_pg_active"` // of the read pool, running a statement
	MaxPGAll            int     `json:"max_pg_all"`    // every connection of the server: pool, listener, others
	PoolSize            int     `json:"pool_size"`     // STREAMER_DB_MAX_CONNS
	QuietP50Ms          float64 `json:"quiet_p50_ms"`
	QuietP99Ms          float64 `json:"quiet_p99_ms"`
	StormP50Ms          float64 `json:"storm_p50_ms"`
	StormP99Ms          float64 `json:"storm_p99_ms"`
	StormMaxMs          float64 `json:"storm_max_ms"`
	LiveMissing         int64   `json:"live_missing"`
	LiveDuplicates      int64   `json:"live_duplicates"`
	ReplayEventsPerConn int64   `json:"replay_events_per_conn"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// fill copies a merged report's figures into r.
func (r *result) fill(m merged) {
	r.Held, r.Dropped = m.Open, m.Dropped
	r.Deliveries = m.Deliveries
	r.P50Ms, r.P99Ms, r.MaxMs = ms(m.lat.Quantile(0.5)), ms(m.lat.Quantile(0.99)), float64(m.lat.Max())/1e6
	r.MinMs = float64(m.lat.Min()) / 1e6
	r.Complete = m.Complete
	r.Missing, r.Duplicates, r.Reordered, r.Unexpected, r.Gaps = m.Missing, m.Duplicates, m.Reordered, m.Unexpected, m.Gaps
	r.Leaked = m.Leaked
	if len(m.Errors) > 0 {
		r.Notes = append(r.Notes, "connection errors: "+fmt.Sprint(m.Errors))
	}
}

// window fills the figures measured between two marks.
func (r *result) window(a, z mark) {
	r.Window = z.at.Sub(a.at).Seconds()
	r.ServerCPU, r.PGCPU, r.ClientCPU = z.server-a.server, z.pg-a.pg, z.clients-a.clients
	r.ProxyCPU = z.proxy - a.proxy
	r.ServerWrites = z.writes - a.writes
	r.DBReads, r.DBReadMs = z.dbReads-a.dbReads, z.dbReadMs-a.dbReadMs
	r.Ticks, r.TickCalls, r.TickMs = z.ticks-a.ticks, z.tickCalls-a.tickCalls, z.tickMs-a.tickMs
	for outcome, n := range z.notes {
		if d := int64(n - a.notes[outcome]); d > 0 {
			if r.TickNotes == nil {
				r.TickNotes = map[string]int64{}
			}
			r.TickNotes[outcome] = d
		}
	}
	for q, n := range z.stmts {
		if d := n - a.stmts[q]; d > 0 {
			if r.DBStatements == nil {
				r.DBStatements = map[string]int64{}
			}
			r.DBStatements[q] = d
		}
	}
	r.LoadStart, r.LoadEnd = a.load, z.load
	if r.Window > 0 {
		ours := r.ServerCPU + r.ProxyCPU + r.PGCPU + r.ClientCPU + (z.self - a.self)
		r.OtherCPU = max((z.machine-a.machine)-ours, 0) / r.Window
	}
	if r.Deliveries > 0 {
		r.CPUPerDeliveryUs = r.ServerCPU / float64(r.Deliveries) * 1e6
		r.PGCPUPerDeliveryUs = r.PGCPU / float64(r.Deliveries) * 1e6
		for role, cpu := range cpuByRole(a.backends, z.backends) {
			if r.PGByBackendUs == nil {
				r.PGByBackendUs = map[string]float64{}
			}
			r.PGByBackendUs[role] = cpu / float64(r.Deliveries) * 1e6
		}
	}
}

func (r *result) memory(base, end memory) {
	r.RSSBaseKiB, r.RSSKiB, r.RSSPeakKiB = base.RSS, end.RSS, end.HWM
	if r.Held > 0 {
		r.RSSPerConnKiB = float64(end.RSS-base.RSS) / float64(r.Held)
		r.AnonPerConnKiB = float64(end.Anon-base.Anon) / float64(r.Held)
	}
}

func (b *bench) publisher(t *target) publisher {
	if t.kind == "streamer" {
		return pgPublisher{b.pool}
	}
	return newHTTPPublisher(t.addr)
}

// idle holds IdleConns connections for IdleHold and measures the server's
// memory per connection.
func (b *bench) idle(ctx context.Context, kind string) (result, error) {
	r := result{Conns: b.cfg.IdleConns}
	s, err := b.begin(ctx, "idle", kind)
	if err != nil {
		return r, err
	}
	defer s.end()
	ws, took, err := s.openFor(&r, "open errors", []client.ConnGroup{{Stream: "idle", Count: b.cfg.IdleConns}}, b.cfg.DialParallel)
	r.OpenSeconds = took.Seconds()
	if err != nil {
		return r, err
	}
	a := s.mark(ctx)
	profiled := s.profileCPU(b.cfg.IdleHold - time.Second)
	if err := sleep(ctx, b.cfg.IdleHold); err != nil {
		return r, err
	}
	profiled()
	end, err := s.idleEnd(ctx, &r, ws, a)
	if err != nil {
		return r, err
	}
	r.memory(s.base, end)
	s.profileMemory()
	return r, nil
}

// idleEnd closes an idle window begun at a: it reads the server's memory
// and the workers' report (no event expected) into r.
func (s *session) idleEnd(ctx context.Context, r *result, ws []*workerProc, a mark) (memory, error) {
	z := s.mark(ctx)
	end, err := procMemory(s.t.pid)
	if err != nil {
		return end, err
	}
	m, err := report(ws, map[string]int64{"idle": 0}, 0)
	if err != nil {
		return end, err
	}
	r.fill(m)
	r.window(a, z)
	return end, nil
}

// deliver opens groups, publishes at rate for Measure, and checks that every
// connection got every event of its stream.
func (b *bench) deliver(ctx context.Context, label, kind string, groups []client.ConnGroup, rate float64, pick func(int64) string) (result, error) {
	s, err := b.begin(ctx, label, kind)
	if err != nil {
		return result{}, err
	}
	defer s.end()
	return b.deliverOn(ctx, s, groups, rate, pick)
}

// deliverOn is deliver on a session already begun.
func (b *bench) deliverOn(ctx context.Context, s *session, groups []client.ConnGroup, rate float64, pick func(int64) string) (result, error) {
	return b.deliverRestricted(ctx, s, groups, rate, pick, nil)
}

// deliverRestricted is deliverOn with the pacer's restrict (see pacer):
// some events with an audience, each group expecting the keys it may see.
func (b *bench) deliverRestricted(ctx context.Context, s *session, groups []client.ConnGroup, rate float64, pick func(int64) string,
	restrict func(int64) (string, []string)) (result, error) {
	var r result
	for _, g := range groups {
		r.Conns += g.Count
	}
	ws, err := s.openSettled(ctx, &r, groups)
	if err != nil {
		return r, err
	}
	if err := resetAll(ws); err != nil {
		return r, err
	}

	pub := b.publisher(s.t)
	defer pub.close()
	p := newPacer(pub, rate, b.cfg.Payload, pick)
	p.restrict = restrict
	a := s.mark(ctx)
	profiled := s.profileCPU(b.cfg.Measure)
	elapsed := p.run(ctx, b.cfg.Measure, nil)
	m, err := report(ws, p.expected(), b.cfg.Drain)
	z := s.mark(ctx)
	end, _ := procMemory(s.t.pid)
	profiled()
	if err != nil {
		return r, err
	}
	r.fill(m)
	r.window(a, z)
	r.memory(s.base, end)
	r.Published, r.PublishErrors = p.sent, p.errors
	r.PublishP50Ms, r.PublishP99Ms = p.publishLatency()
	r.PublishRate = float64(p.sent) / elapsed.Seconds()
	r.DeliveriesPerSec = float64(r.Deliveries) / elapsed.Seconds()
	if p.lastErr != nil {
		r.Notes = append(r.Notes, "last publish error: "+p.lastErr.Error())
	}
	return r, nil
}

// replay: ReplayLive subscribers of a live stream measure latency while
// quiet; then ReplayBehind events are published on another stream and
// ReplayClients connect at once resuming from before them, while both
// streams go on being published. It measures the time until every client
// has the backlog, the database connections the server holds meanwhile,
// and the live subscribers' latency during the storm.
func (b *bench) replay(ctx context.Context, kind string) (result, error) {
	c := b.cfg
	r := result{Conns: c.ReplayLive + c.ReplayClients}
	f := &replayFigures{Clients: c.ReplayClients, Behind: c.ReplayBehind, PoolSize: c.DBMaxConns}
	r.Replay = f
	s, err := b.begin(ctx, "replay", kind)
	if err != nil {
		return r, err
	}
	defer s.end()
	liveWs, _, err := s.openFor(&r, "open errors", []client.ConnGroup{{Stream: "live", Count: c.ReplayLive}}, c.DialParallel)
	if err != nil {
		return r, err
	}
	if err := sleep(ctx, c.Settle); err != nil {
		return r, err
	}
	pub := b.publisher(s.t)
	defer pub.close()

	// Quiet: the live stream alone.
	live := newPacer(pub, c.ReplayLiveRate, c.Payload, oneStream("live"))
	if err := resetAll(liveWs); err != nil {
		return r, err
	}
	live.run(ctx, c.ReplayQuiet, nil)
	quiet, err := report(liveWs, live.expected(), c.Drain)
	if err != nil {
		return r, err
	}
	f.QuietP50Ms, f.QuietP99Ms = ms(quiet.lat.Quantile(0.5)), ms(quiet.lat.Quantile(0.99))

	// The backlog, committed after the token the clients resume from.
	var token string
	if err := b.pool.QueryRow(ctx, "SELECT streamer.head()").Scan(&token); err != nil {
		return r, err
	}
	backlog := newPacer(pub, c.ReplayStreamRate, c.Payload, oneStream("replay"))
	if err := backlog.publishN(ctx, int64(c.ReplayBehind), int64(max(c.ReplayBatch, 1))); err != nil {
		return r, fmt.Errorf("publish the backlog: %w", err)
	}

	// The storm.
	if err := resetAll(liveWs); err != nil {
		return r, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() { f.MaxPGConns, f.MaxPGActive, f.MaxPGAll = b.samplePGConns(sampleCtx) })
	stopPublishing := make(chan struct{})
	var publishers sync.WaitGroup
	publishers.Go(func() { live.run(ctx, time.Hour, stopPublishing) })
	publishers.Go(func() { backlog.run(ctx, time.Hour, stopPublishing) })
	var once sync.Once
	stop := func() {
		once.Do(func() { close(stopPublishing) })
		publishers.Wait()
		stopSampling()
		sampler.Wait()
	}
	defer stop()

	a := s.mark(ctx)
	profiled := s.profileCPU(30 * time.Second)
	t0 := time.Now()
	replayWs, _, err := s.openFor(&r, "replay open errors", []client.ConnGroup{{Stream: "replay", Count: c.ReplayClients, LastEventID: token}}, c.ReplayClients)
	if err != nil {
		return r, err
	}
	for {
		m, err := report(replayWs, map[string]int64{"replay": int64(c.ReplayBehind)}, 0)
		if err != nil {
			return r, err
		}
		if m.Complete {
			f.AllCaughtUp = true
			f.CatchUpSeconds = time.Since(t0).Seconds()
			break
		}
		if time.Since(t0) > c.ReplayTimeout || ctx.Err() != nil {
			f.CatchUpSeconds = time.Since(t0).Seconds()
			r.Notes = append(r.Notes, fmt.Sprintf("not every client caught up within %v (fewest events on one: %d)", c.ReplayTimeout, m.MinGot))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A little more live publishing on both streams: the caught-up clients
	// are live subscribers now.
	_ = sleep(ctx, min(2*time.Second, c.Measure))
	stop()
	liveRep, err := report(liveWs, live.expected(), c.Drain)
	if err != nil {
		return r, err
	}
	replayRep, err := report(replayWs, backlog.expected(), c.Drain)
	if err != nil {
		return r, err
	}
	z := s.mark(ctx)
	end, _ := procMemory(s.t.pid)
	profiled()

	f.StormP50Ms, f.StormP99Ms = ms(liveRep.lat.Quantile(0.5)), ms(liveRep.lat.Quantile(0.99))
	f.StormMaxMs = float64(liveRep.lat.Max()) / 1e6
	f.LiveMissing, f.LiveDuplicates = liveRep.Missing, liveRep.Duplicates
	f.ReplayDeliveries = replayRep.Deliveries
	if f.CatchUpSeconds > 0 {
		f.ReplayPerSec = float64(c.ReplayClients*c.ReplayBehind) / f.CatchUpSeconds
	}
	f.ReplayEventsPerConn = backlog.counts["replay"]

	// The row: all connections; latency of the live subscribers during the
	// storm; CPU over the storm.
	var all merged
	all.Report = liveRep.Report
	all.lat = liveRep.lat
	all.AddOutcome(&replayRep.Report)
	r.fill(all)
	r.window(a, z)
	r.memory(s.base, end)
	r.Published = live.sent + backlog.sent
	r.PublishErrors = live.errors + backlog.errors
	r.PublishP50Ms, r.PublishP99Ms = live.publishLatency()
	r.PublishRate = float64(r.Published-int64(c.ReplayBehind)) / r.Window
	r.DeliveriesPerSec = float64(r.Deliveries) / r.Window
	f.Errors = r.Failed + r.Dropped + int(r.Gaps)
	return r, nil
}

// samplePGConns polls pg_stat_activity until ctx ends and returns the most
// connections the server's read pool (application_name "streamer") had
// open and active at once, and the most the server had in all (pool,
// listener and any other pool of its own).
func (b *bench) samplePGConns(ctx context.Context) (maxPool, maxActive, maxAll int) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		var pool, active, all int
		err := b.pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE application_name = 'streamer'),
       count(*) FILTER (WHERE application_name = 'streamer' AND state = 'active'),
       count(*)
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND application_name <> $1`, benchAppName).Scan(&pool, &active, &all)
		if err == nil {
			maxPool, maxActive, maxAll = max(maxPool, pool), max(maxActive, active), max(maxAll, all)
		}
		select {
		case <-ctx.Done():
			return maxPool, maxActive, maxAll
		case <-t.C:
		}
	}
}
