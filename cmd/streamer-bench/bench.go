package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/hist"
	"github.com/streamer-dev/streamer/internal/backoff"
	"github.com/streamer-dev/streamer/internal/pgcluster"
)

// config is one run of the load tool. Every scenario runs against each
// target in turn, each on a fresh server process.
type config struct {
	Scenarios   []string
	Targets     []string
	DatabaseURL string // empty: a throwaway local cluster
	ServerBin   string // empty: go build ./cmd/streamer
	ServerSrc   string // module to build cmd/streamer from; empty: this one
	Profile     string // directory for pprof profiles; empty: no profiling
	Timeout     time.Duration

	MaxConnections int // STREAMER_MAX_CONNECTIONS
	DBMaxConns     int // STREAMER_DB_MAX_CONNS
	ConnsPerWorker int
	DialParallel   int // dials in flight per worker
	ReadBuffer     int
	Payload        int // bytes of data per event
	Settle         time.Duration
	Drain          time.Duration // wait for the last events after publishing stops
	Measure        time.Duration // publishing window of the delivery scenarios

	IdleConns  int
	IdleHold   time.Duration
	BurstConns int // idle-burst: connections opened at once
	SlowConns  int // slow, slow-uncapped: clients that stop reading

	FanoutConns int
	FanoutRate  float64
	FastConns   int
	FastRate    float64

	Streams     int
	StreamsRate float64

	ReplayClients    int
	ReplayBehind     int
	ReplayBatch      int // events per transaction of the backlog
	ReplayLive       int // subscribers of the live stream
	ReplayLiveRate   float64
	ReplayStreamRate float64 // events/s on the replayed stream during the storm
	ReplayQuiet      time.Duration
	ReplayTimeout    time.Duration

	Capacity capacityConfig
}

// fullConfig is the scenarios at full size; `make bench-load` runs it
// in about 14 minutes.
func fullConfig() config {
	return config{
		Scenarios:      []string{"idle", "idle-burst", "fanout", "fanout-auth", "fanout-fast", "fanout-fast-auth", "fanout-fast-uncapped", "streams", "replay", "slow", "slow-uncapped", "capacity", "nginx"},
		Targets:        []string{"streamer", "baseline"},
		Timeout:        18 * time.Minute,
		MaxConnections: 19000,
		DBMaxConns:     10,
		ConnsPerWorker: 5000,
		DialParallel:   64,
		ReadBuffer:     8 << 10,
		Payload:        100,
		Settle:         2 * time.Second,
		Drain:          10 * time.Second,
		Measure:        20 * time.Second,

		IdleConns:  15000,
		IdleHold:   30 * time.Second,
		BurstConns: 10000,
		SlowConns:  1000,

		FanoutConns: 10000,
		FanoutRate:  2,
		FastConns:   1000,
		FastRate:    50,

		Streams:     10000,
		StreamsRate: 1000,

		ReplayClients:    1000,
		ReplayBehind:     10000,
		ReplayBatch:      10,
		ReplayLive:       500,
		ReplayLiveRate:   20,
		ReplayStreamRate: 5,
		ReplayQuiet:      10 * time.Second,
		ReplayTimeout:    150 * time.Second,

		Capacity: fullCapacity(),
	}
}

// smokeConfig is the same scenarios with tiny numbers: a few seconds each.
func smokeConfig() config {
	c := fullConfig()
	c.Timeout = 2 * time.Minute
	c.ConnsPerWorker = 40 // so that the smoke run spreads over workers too
	c.Settle = 200 * time.Millisecond
	c.Drain = 5 * time.Second
	c.Measure = 2 * time.Second
	c.IdleConns, c.IdleHold = 50, time.Second
	c.BurstConns, c.SlowConns = 50, 20
	c.FanoutConns, c.FanoutRate = 50, 20
	c.FastConns, c.FastRate = 20, 100
	c.Streams, c.StreamsRate = 50, 100
	c.ReplayClients, c.ReplayBehind, c.ReplayLive = 20, 300, 10
	c.ReplayQuiet, c.ReplayTimeout = time.Second, 30*time.Second
	c.Capacity = smokeCapacity()
	return c
}

// bench is a run in progress.
type bench struct {
	cfg        config
	log        io.Writer
	start      time.Time
	self       string // this executable, for helper processes
	tmp        string
	serverBin  string
	dbURL      string
	pool       *pgxpool.Pool // the tool's own: publishing and sampling
	postmaster int           // 0 when the database is not a local process
	stmtStats  bool          // pg_stat_statements is available
	machine    string        // what the figures were measured on
	nworkers   int           // client workers started, for profile names
	jwtSecret  []byte        // the streamer servers' STREAMER_JWT_SECRET (auth.go)
}

// runBench sets up, runs every scenario against every target, and returns
// the results. A scenario that fails is reported in its result; the run
// goes on with the next one.
func runBench(ctx context.Context, cfg config, log io.Writer) (machine string, _ []result, _ error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	b := &bench{cfg: cfg, log: log, start: time.Now()}
	cleanup, err := b.setUp(ctx)
	defer cleanup()
	if err != nil {
		return "", nil, err
	}
	b.describe(ctx)
	b.logf("%s", b.machine)
	var results []result
	for _, sc := range cfg.Scenarios {
		for _, kind := range cfg.Targets {
			if streamerOnly[sc] && kind != "streamer" {
				continue // the others keep no history to replay, run no instances behind nginx, have no send-buffer setting
			}
			if ctx.Err() != nil {
				return b.machine, results, fmt.Errorf("run timed out after %v: %w", cfg.Timeout, context.Cause(ctx))
			}
			b.logf("== %s on %s (load %.2f)", sc, kind, loadAvg())
			r, err := b.runScenario(ctx, sc, kind)
			if errors.Is(err, errSkipped) {
				b.logf("   %v", err)
				continue
			}
			r.Scenario, r.Target = sc, kind
			if err != nil {
				r.Error = err.Error()
				b.logf("   FAILED: %v", err)
			} else {
				b.logf("   %s", r.summary())
			}
			results = append(results, r)
		}
	}
	return b.machine, results, nil
}

// describe records the machine, the Go and PostgreSQL versions and the
// server's source revision, for the report.
func (b *bench) describe(ctx context.Context) {
	cpu := "?"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	parts := []string{fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.Version())}
	if b.pool != nil {
		var v string
		if b.pool.QueryRow(ctx, "SHOW server_version").Scan(&v) == nil {
			parts = append(parts, "PostgreSQL "+v)
		}
	}
	if b.serverBin != "" {
		server := "server " + b.serverBin
		if b.cfg.ServerBin == "" {
			rev := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
			rev.Dir = b.cfg.ServerSrc
			if out, err := rev.Output(); err == nil {
				server = "server built from " + strings.TrimSpace(string(out))
			}
		}
		parts = append(parts, server)
	}
	b.machine = strings.Join(parts, "; ")
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%5.1fs] "+format+"\n", append([]any{time.Since(b.start).Seconds()}, args...)...)
}

func (b *bench) runScenario(ctx context.Context, sc, kind string) (result, error) {
	c := b.cfg
	switch sc {
	case "idle":
		return b.idle(ctx, kind)
	case "fanout":
		return b.deliver(ctx, sc, kind, []client.ConnGroup{{Stream: "fanout", Count: c.FanoutConns}}, c.FanoutRate, oneStream("fanout"))
	case "fanout-fast":
		return b.deliver(ctx, sc, kind, []client.ConnGroup{{Stream: "fast", Count: c.FastConns}}, c.FastRate, oneStream("fast"))
	case "fanout-auth":
		return b.fanoutAuth(ctx, sc, kind, "fanout-auth", c.FanoutConns, c.FanoutRate)
	case "fanout-fast-auth":
		return b.fanoutAuth(ctx, sc, kind, "fast-auth", c.FastConns, c.FastRate)
	case "streams":
		groups, pick := streamsOf(c.Streams)
		return b.deliver(ctx, sc, kind, groups, c.StreamsRate, pick)
	case "replay":
		return b.replay(ctx, kind)
	case "idle-burst":
		return b.idleBurst(ctx, kind)
	case "slow", "slow-uncapped":
		return b.slow(ctx, sc)
	case "fanout-fast-uncapped":
		return b.deliver(ctx, sc, kind, []client.ConnGroup{{Stream: "fast", Count: c.FastConns}}, c.FastRate, oneStream("fast"))
	case "capacity":
		return b.capacity(ctx, kind)
	case "nginx":
		return b.nginx(ctx)
	case "streams-nginx":
		return b.streamsProxied(ctx)
	default:
		return result{}, fmt.Errorf("unknown scenario %q", sc)
	}
}

func oneStream(name string) func(int64) string { return func(int64) string { return name } }

// setUp builds the server, finds or starts PostgreSQL and migrates it.
func (b *bench) setUp(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if b.self, err = os.Executable(); err != nil {
		return cleanup, err
	}
	if b.tmp, err = os.MkdirTemp("", "streamer-bench-"); err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { _ = os.RemoveAll(b.tmp) })
	if b.jwtSecret, err = newSecret(); err != nil {
		return cleanup, err
	}
	if b.cfg.Profile != "" {
		if err := os.MkdirAll(b.cfg.Profile, 0o755); err != nil {
			return cleanup, err
		}
	}

	needDB := false
	for _, t := range b.cfg.Targets {
		needDB = needDB || t == "streamer"
	}
	if !needDB {
		return cleanup, nil
	}

	b.serverBin = b.cfg.ServerBin
	if b.serverBin == "" {
		b.logf("building cmd/streamer%s%s", map[bool]string{true: " in " + b.cfg.ServerSrc}[b.cfg.ServerSrc != ""],
			map[bool]string{true: " with the pprof overlay"}[b.cfg.Profile != ""])
		if b.serverBin, err = buildServer(ctx, b.cfg.ServerSrc, b.tmp, b.cfg.Profile != ""); err != nil {
			return cleanup, err
		}
	}

	b.dbURL = b.cfg.DatabaseURL
	if b.dbURL == "" {
		b.logf("starting a throwaway PostgreSQL cluster")
		cluster, err := pgcluster.Start(ctx,
			"shared_preload_libraries = 'pg_stat_statements'",
			"max_connections = 300")
		if err != nil {
			return cleanup, err
		}
		undo = append(undo, func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), clusterStopTimeout)
			defer cancel()
			if err := cluster.Stop(stopCtx); err != nil {
				b.logf("stopping PostgreSQL: %v", err)
			}
		})
		if b.dbURL, err = createDatabase(ctx, cluster.ConnString(), "streamer_bench"); err != nil {
			return cleanup, err
		}
	}

	migrate := exec.CommandContext(ctx, b.serverBin, "migrate")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+b.dbURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		return cleanup, fmt.Errorf("streamer migrate: %w\n%s", err, out)
	}

	pcfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return cleanup, err
	}
	pcfg.MaxConns = 6
	pcfg.ConnConfig.RuntimeParams["application_name"] = benchAppName
	if b.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return cleanup, err
	}
	undo = append(undo, b.pool.Close)

	_, err = b.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	b.stmtStats = err == nil
	var backend int
	if err := b.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err == nil {
		if pm, err := parentPID(backend); err == nil {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pm)); strings.HasPrefix(string(comm), "postgres") {
				b.postmaster = pm
			}
		}
	}
	return cleanup, nil
}

// benchAppName is the application_name of the tool's own connections.
const benchAppName = "streamer-bench"

// clusterStopTimeout bounds stopping the throwaway cluster; past it
// postgres is killed.
const clusterStopTimeout = 30 * time.Second

// createDatabase creates db on the server of admin (dropping an old one)
// and returns its connection string.
func createDatabase(ctx context.Context, admin, db string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := pgx.Identifier{db}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = "/"+db, ""
	return u.String(), nil
}

// session is one scenario on one fresh server process.
type session struct {
	b       *bench
	label   string
	t       *target
	base    memory // the server's memory once settled, before any client
	workers []*workerProc
}

// begin starts the target, waits for it to settle and reads its memory.
func (b *bench) begin(ctx context.Context, label, kind string) (*session, error) {
	t, err := b.startTarget(ctx, kind, label)
	if err != nil {
		return nil, err
	}
	s := &session{b: b, label: label, t: t}
	b.logf("   %s server ready", kind)
	if err := sleep(ctx, b.cfg.Settle); err != nil {
		s.end()
		return nil, err
	}
	if s.base, err = procMemory(t.pid); err != nil {
		s.end()
		return nil, err
	}
	return s, nil
}

// end closes the clients, then stops the server.
func (s *session) end() {
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(w.close)
	}
	wg.Wait()
	if err := s.t.stop(20 * time.Second); err != nil {
		s.b.logf("   %v", err)
	}
	s.b.logf("   stopped")
}

// openFor opens groups (see open) for the scenario whose result is r: the
// connections that failed are added to r.Failed and the open errors to
// r.Notes, under note. It returns how long opening took.
func (s *session) openFor(r *result, note string, groups []client.ConnGroup, parallel int) ([]*workerProc, time.Duration, error) {
	start := time.Now()
	ws, _, failed, errs, err := s.open(groups, parallel)
	r.Failed += failed
	if len(errs) > 0 {
		r.Notes = append(r.Notes, fmt.Sprint(note, ": ", errs))
	}
	return ws, time.Since(start), err
}

// openSettled opens groups for r (see openFor), records how long that took
// and waits for the server to settle.
func (s *session) openSettled(ctx context.Context, r *result, groups []client.ConnGroup) ([]*workerProc, error) {
	ws, took, err := s.openFor(r, "open errors", groups, s.b.cfg.DialParallel)
	r.OpenSeconds = took.Seconds()
	if err != nil {
		return ws, err
	}
	return ws, sleep(ctx, s.b.cfg.Settle)
}

// open spreads the connections of groups over new workers, opens them all
// at once and returns those workers with the counts of opened and failed
// connections.
func (s *session) open(groups []client.ConnGroup, parallel int) (ws []*workerProc, opened, failed int, errs []string, err error) {
	per := max(s.b.cfg.ConnsPerWorker, 1)
	var batches [][]client.ConnGroup
	var cur []client.ConnGroup
	n := 0
	for _, g := range groups {
		for g.Count > 0 {
			k := min(g.Count, per-n)
			var head client.ConnGroup
			head, g = g.Split(k)
			cur = append(cur, head)
			if n += k; n == per {
				batches, cur, n = append(batches, cur), nil, 0
			}
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	for range batches {
		w, err := s.b.startWorker(s.label + "." + s.t.kind)
		if err != nil {
			return ws, opened, failed, errs, err
		}
		ws = append(ws, w)
		s.workers = append(s.workers, w)
	}
	resps := make([]client.Response, len(ws))
	errsCall := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			resps[i], errsCall[i] = w.call(client.Request{
				Op: "open", Addr: s.t.addr, Groups: batches[i],
				Parallel: parallel, DialTimeout: 30 * time.Second,
			}, 5*time.Minute)
		})
	}
	wg.Wait()
	for i := range ws {
		opened += resps[i].Opened
		failed += resps[i].Failed
		errs = append(errs, resps[i].OpenErrors...)
	}
	return ws, opened, failed, errs, errors.Join(errsCall...)
}

// each calls every worker of ws at once.
func each(ws []*workerProc, req client.Request, timeout time.Duration) ([]client.Response, error) {
	resps := make([]client.Response, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { resps[i], errs[i] = w.call(req, timeout) })
	}
	wg.Wait()
	return resps, errors.Join(errs...)
}

// report merges the reports of ws against expected, after waiting up to
// wait for every connection to have everything.
func report(ws []*workerProc, expected map[string]int64, wait time.Duration) (merged, error) {
	resps, err := each(ws, client.Request{Op: "report", Expected: expected, Wait: wait}, wait+time.Minute)
	var m merged
	m.Complete = true
	m.MinGot = -1
	for _, r := range resps {
		if r.Report == nil {
			m.Complete = false
			continue
		}
		x := r.Report
		m.Conns += x.Conns
		m.AddOutcome(x)
		m.Other += x.Other
		if m.MinGot < 0 || x.MinGot < m.MinGot {
			m.MinGot = x.MinGot
		}
		m.lat.Add(x.Latency)
	}
	return m, err
}

// merged is the sum of workers' reports.
type merged struct {
	client.Report
	lat hist.Latencies
}

func resetAll(ws []*workerProc) error {
	_, err := each(ws, client.Request{Op: "reset"}, 30*time.Second)
	return err
}

// mark is a sample of the counters that windows are measured with.
type mark struct {
	at                  time.Time
	server, pg, clients float64 // CPU seconds
	proxy               float64 // CPU seconds of a proxy in front of the server (nginx.go)
	writes              int64   // the server's write system calls (writes.go)
	dbReads             int64
	dbReadMs            float64
	stmts               map[string]int64   // calls by statement
	backends            backendCPU         // the cluster's backends (streamer targets only)
	ticks, tickCalls    int64              // ticks mode: ticks that numbered, calls of streamer.tick()
	tickMs              float64            // execution time of those calls
	notes               map[string]float64 // the server's streamer_tick_notes_total by outcome
	load                float64
	machine, self       float64 // CPU seconds: the whole machine's busy time, this process's
}

func (s *session) mark(ctx context.Context) mark {
	m := mark{at: time.Now(), load: loadAvg(), machine: machineBusy()}
	m.self, _ = procCPU(os.Getpid(), false)
	m.server, m.proxy = s.t.cpu()
	m.writes = s.t.writes()
	if s.b.postmaster > 0 {
		m.pg, _ = clusterCPU(s.b.postmaster)
	}
	for _, w := range s.workers {
		if c, err := procCPU(w.pid, false); err == nil {
			m.clients += c
		}
	}
	if s.t.kind == "streamer" {
		m.notes = s.t.tickNotes()
	}
	if s.b.stmtStats && s.t.kind == "streamer" {
		m.stmts = map[string]int64{}
		rows, err := s.b.pool.Query(ctx, `
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 90), calls, total_exec_time
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query LIKE '%FROM streamer.commits%' AND query NOT LIKE 'INSERT%'`)
		if err == nil {
			for rows.Next() {
				var q string
				var calls int64
				var ms float64
				if rows.Scan(&q, &calls, &ms) == nil {
					m.stmts[q] += calls
					m.dbReads += calls
					m.dbReadMs += ms
				}
			}
			rows.Close()
		}
		// Ticks mode: what the sequencer asked of the database. Both
		// figures are 0 in trigger mode (and before migration 007). The
		// sequencer's statement starts with the tick and may read more
		// after it (it does since the notify-queue gauge): a prefix, so
		// that servers of either age are counted.
		_ = s.b.pool.QueryRow(ctx, `
SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(total_exec_time), 0)
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query LIKE 'SELECT streamer.tick()%'`).Scan(&m.tickCalls, &m.tickMs)
		_ = s.b.pool.QueryRow(ctx, `SELECT ticks FROM streamer.ordering`).Scan(&m.ticks)
	}
	if s.b.postmaster > 0 && s.t.kind == "streamer" {
		m.backends = s.b.sampleBackends(ctx)
	}
	return m
}

// sleep waits d, or returns the cause of ctx's end as soon as it ends.
func sleep(ctx context.Context, d time.Duration) error {
	if !backoff.Sleep(ctx, d) {
		return context.Cause(ctx)
	}
	return nil
}

// fetch saves an HTTP resource (a pprof profile) to a file.
func fetch(url, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// profileCPU starts a CPU profile of the target over d, saved when done.
func (s *session) profileCPU(d time.Duration) (wait func()) {
	if s.t.pprofAddr == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(s.b.cfg.Profile, s.label+"."+s.t.kind+".cpu.pprof")
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.t.pprofAddr, max(int(d.Seconds()), 1))
		if err := fetch(url, path, d+30*time.Second); err != nil {
			s.b.logf("   cpu profile: %v", err)
		}
	}()
	return func() { <-done }
}

// profileMemory saves the target's heap profile, its memory statistics and
// goroutine count.
func (s *session) profileMemory() {
	if s.t.pprofAddr == "" {
		return
	}
	base := filepath.Join(s.b.cfg.Profile, s.label+"."+s.t.kind)
	for _, f := range []struct{ path, file string }{
		{"heap", ".heap.pprof"},
		{"heap?debug=1", ".heap.txt"},
		{"goroutine?debug=1", ".goroutine.txt"},
	} {
		if err := fetch("http://"+s.t.pprofAddr+"/debug/pprof/"+f.path, base+f.file, time.Minute); err != nil {
			s.b.logf("   profile %s: %v", f.path, err)
		}
	}
}
