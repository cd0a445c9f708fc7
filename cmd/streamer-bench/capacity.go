package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/hist"
)

// The capacity scenario: the highest rate of events a server delivers,
// every one of them, with p99 under a limit, when streams are many (a
// stream per user). It opens Streams connections, one per stream, once,
// then publishes round robin over the streams in steps of rising rate
// (see ladder), each step Step long and judged on its own (see judge):
// every event published so far delivered within the drain time, no fault,
// and p99 under P99 in most of the step's Window-long windows. The events
// are stamped with the time they were due (pacer.stampDue), so a publisher
// held back counts as latency. Before the first step Warmup of publishing
// at Start is not judged: the first seconds after 10,000 connections
// opened are slower (the server's heap grows, its goroutines' stacks too).

// capacityConfig is the capacity scenario's search.
type capacityConfig struct {
	Streams int           // streams, one subscriber each
	Start   float64       // events/s of the first step
	Factor  float64       // a step's rate over the previous one's while climbing
	Rungs   int           // climbing steps at most (retries and bisections come on top)
	Bisect  int           // bisections between the last rate that passed and the first that failed
	Step    time.Duration // publishing time of a step
	Window  time.Duration // a step's p99 is judged in windows this long
	Warmup  time.Duration // publishing at Start before the first step, not judged
	P99     time.Duration // the latency limit
	// Recover bounds the wait for a backlog to drain after a failed step;
	// past it the search stops, since later steps would measure the
	// backlog.
	Recover time.Duration
}

func fullCapacity() capacityConfig {
	return capacityConfig{
		Streams: 10000, Start: 500, Factor: 1.5, Rungs: 12, Bisect: 1,
		Step: 5 * time.Second, Window: time.Second, Warmup: 3 * time.Second,
		P99: 100 * time.Millisecond, Recover: 30 * time.Second,
	}
}

// smokeCapacity climbs three low rungs on a few streams.
func smokeCapacity() capacityConfig {
	c := fullCapacity()
	c.Streams, c.Start, c.Factor, c.Rungs = 20, 40, 2, 3
	c.Step, c.Window, c.Warmup, c.Recover = time.Second, 250*time.Millisecond, 200*time.Millisecond, 10*time.Second
	return c
}

// capacityFlags adds the scenario's flags to fs; defaults are full's.
func capacityFlags(fs *flag.FlagSet, c *capacityConfig, full capacityConfig) {
	fs.IntVar(&c.Streams, "capacity-streams", full.Streams, "capacity: streams, one subscriber each")
	fs.Float64Var(&c.Start, "capacity-start", full.Start, "capacity: events/s of the first step")
	fs.Float64Var(&c.Factor, "capacity-factor", full.Factor, "capacity: rate of a step over the previous one's")
	fs.IntVar(&c.Rungs, "capacity-rungs", full.Rungs, "capacity: rising steps at most")
	fs.IntVar(&c.Bisect, "capacity-bisect", full.Bisect, "capacity: bisections after the first rate that fails twice")
	fs.DurationVar(&c.Step, "capacity-step", full.Step, "capacity: publishing time of each step")
	fs.DurationVar(&c.Window, "capacity-window", full.Window, "capacity: a step passes when every event arrives and p99 is under -capacity-p99 in most windows this long")
	fs.DurationVar(&c.Warmup, "capacity-warmup", full.Warmup, "capacity: publishing at -capacity-start before the first step, not judged")
	fs.DurationVar(&c.P99, "capacity-p99", full.P99, "capacity: the latency limit")
	fs.DurationVar(&c.Recover, "capacity-recover", full.Recover, "capacity: bound on draining the backlog of a failed step")
}

// capacityFigures are the capacity scenario's own measurements.
type capacityFigures struct {
	Streams  int            `json:"streams"`
	LimitMs  float64        `json:"p99_limit_ms"`
	Capacity float64        `json:"capacity_events_per_sec"` // the highest rate that passed; 0: none
	Ceiling  bool           `json:"ceiling"`                 // a higher rate failed; else the capacity is a lower bound
	Stopped  string         `json:"stopped,omitempty"`       // why the search stopped early
	Steps    []capacityStep `json:"steps"`
}

// capacityStep is one step of the search.
type capacityStep struct {
	Rate             float64   `json:"rate"`         // asked for, events/s
	PublishRate      float64   `json:"publish_rate"` // achieved
	Deliveries       int64     `json:"deliveries"`
	P50Ms            float64   `json:"p50_ms"`
	P99Ms            float64   `json:"p99_ms"`        // of the whole step
	WindowP99Ms      []float64 `json:"window_p99_ms"` // of each window
	MaxMs            float64   `json:"max_ms"`
	PublishP99Ms     float64   `json:"publish_p99_ms"`
	CPUPerDeliveryUs float64   `json:"cpu_per_delivery_us"`
	PGPerDeliveryUs  float64   `json:"pg_cpu_per_delivery_us"`
	OtherCPU         float64   `json:"other_cpu_cores"`
	Pass             bool      `json:"pass"`
	Why              string    `json:"why,omitempty"`
	RecoveredSeconds float64   `json:"recovered_seconds,omitempty"` // after a failure: until the backlog drained
	result           result    // the step's figures, for the scenario's row
}

// streamsOf names n streams "s.<i>" with one subscriber each, and picks
// them round robin.
func streamsOf(n int) ([]client.ConnGroup, func(int64) string) {
	groups := make([]client.ConnGroup, n)
	names := make([]string, n)
	for i := range groups {
		names[i] = fmt.Sprintf("s.%d", i)
		groups[i] = client.ConnGroup{Stream: names[i], Count: 1}
	}
	return groups, func(i int64) string { return names[i%int64(len(names))] }
}

// capacity runs the search on one server process. Its row in the table
// holds the figures of the step at the capacity; its delivery checks
// (missing, duplicates...) cover the whole run.
func (b *bench) capacity(ctx context.Context, kind string) (result, error) {
	c := b.cfg.Capacity
	r := result{Conns: c.Streams}
	f := &capacityFigures{Streams: c.Streams, LimitMs: ms(c.P99)}
	r.Capacity = f
	s, err := b.begin(ctx, "capacity", kind)
	if err != nil {
		return r, err
	}
	defer s.end()
	groups, pick := streamsOf(c.Streams)
	ws, err := s.openSettled(ctx, &r, groups)
	if err != nil {
		return r, err
	}
	pub := b.publisher(s.t)
	defer pub.close()
	p := newPacer(pub, c.Start, b.cfg.Payload, pick)
	p.stampDue = true
	p.run(ctx, c.Warmup, nil)
	if _, err := report(ws, p.expected(), b.cfg.Drain); err != nil {
		return r, err
	}

	l := newLadder(c.Start, c.Factor, c.Rungs, c.Bisect)
	best := -1 // the step at the capacity, in f.Steps
	for {
		rate, ok := l.next()
		if !ok {
			break
		}
		st, err := b.capacityStep(ctx, s, ws, p, rate, r.Failed)
		if err != nil {
			return r, err
		}
		b.logf("   %s", st.summary())
		l.record(st.Pass)
		if !st.Pass {
			// Let the backlog drain, or the next step measures it.
			t0 := time.Now()
			m, err := report(ws, p.expected(), c.Recover)
			if err != nil {
				return r, err
			}
			st.RecoveredSeconds = time.Since(t0).Seconds()
			if !m.Complete || m.Dropped > 0 {
				f.Stopped = fmt.Sprintf("after %.0f events/s: backlog not drained within %v or connections dropped (%d)", rate, c.Recover, m.Dropped)
				l.stop()
			}
		}
		if st.Pass && (best < 0 || st.Rate > f.Steps[best].Rate) {
			best = len(f.Steps)
		}
		f.Steps = append(f.Steps, st)
	}
	f.Capacity, f.Ceiling = l.capacity()

	// The whole run's delivery checks, then the capacity step's figures.
	m, err := report(ws, p.expected(), b.cfg.Drain)
	if err != nil {
		return r, err
	}
	r.fill(m)
	r.Published, r.PublishErrors = p.sent, p.errors
	if p.lastErr != nil {
		r.Notes = append(r.Notes, "last publish error: "+p.lastErr.Error())
	}
	if best >= 0 {
		x := f.Steps[best].result
		r.Window, r.ServerCPU, r.PGCPU, r.ClientCPU = x.Window, x.ServerCPU, x.PGCPU, x.ClientCPU
		r.Deliveries, r.DeliveriesPerSec, r.PublishRate = x.Deliveries, x.DeliveriesPerSec, x.PublishRate
		r.CPUPerDeliveryUs, r.PGCPUPerDeliveryUs = x.CPUPerDeliveryUs, x.PGCPUPerDeliveryUs
		r.MinMs, r.P50Ms, r.P99Ms, r.MaxMs = x.MinMs, x.P50Ms, x.P99Ms, x.MaxMs
		r.PublishP50Ms, r.PublishP99Ms = x.PublishP50Ms, x.PublishP99Ms
		r.DBReads, r.DBReadMs, r.DBStatements = x.DBReads, x.DBReadMs, x.DBStatements
		r.Ticks, r.TickCalls, r.TickMs, r.TickNotes = x.Ticks, x.TickCalls, x.TickMs, x.TickNotes
		r.LoadStart, r.LoadEnd, r.OtherCPU = x.LoadStart, x.LoadEnd, x.OtherCPU
		r.RSSBaseKiB, r.RSSKiB, r.RSSPeakKiB, r.RSSPerConnKiB, r.AnonPerConnKiB = x.RSSBaseKiB, x.RSSKiB, x.RSSPeakKiB, x.RSSPerConnKiB, x.AnonPerConnKiB
	}
	return r, nil
}

// capacityStep publishes at rate for one step and judges it. failed is the
// count of connections that could not be opened: a fault of every step.
func (b *bench) capacityStep(ctx context.Context, s *session, ws []*workerProc, p *pacer, rate float64, failed int) (capacityStep, error) {
	c := b.cfg.Capacity
	st := capacityStep{Rate: rate}
	if err := resetAll(ws); err != nil {
		return st, err
	}
	p.rate = rate
	p.rtt.Reset()
	sent, errs := p.sent, p.errors
	a := s.mark(ctx)
	// The workers' histograms at each window's end while the pacer runs
	// (nothing else touches it meanwhile); the windows are their
	// differences.
	done := make(chan time.Duration, 1)
	go func() { done <- p.run(ctx, c.Step, nil) }()
	var marks []hist.Latencies
	windows := max(int(c.Step/max(c.Window, time.Millisecond)), 1)
	tick := time.NewTicker(c.Step / time.Duration(windows))
	var elapsed time.Duration
	var werr error
publishing:
	for {
		select {
		case elapsed = <-done:
			break publishing
		case <-tick.C:
			if len(marks) < windows-1 { // the last window ends with the drain
				m, err := report(ws, nil, 0)
				werr = errors.Join(werr, err)
				marks = append(marks, m.lat)
			}
		}
	}
	tick.Stop()
	m, err := report(ws, p.expected(), b.cfg.Drain)
	z := s.mark(ctx)
	end, _ := procMemory(s.t.pid)
	if err = errors.Join(werr, err); err != nil {
		return st, err
	}
	var prev hist.Latencies
	for _, l := range append(marks, m.lat) {
		w := l.Since(&prev)
		st.WindowP99Ms = append(st.WindowP99Ms, ms(w.Quantile(0.99)))
		prev = l
	}

	x := &st.result
	x.Failed = failed
	x.fill(m)
	x.window(a, z)
	x.memory(s.base, end)
	x.PublishRate = float64(p.sent-sent) / elapsed.Seconds()
	x.DeliveriesPerSec = float64(x.Deliveries) / elapsed.Seconds()
	x.PublishP50Ms, x.PublishP99Ms = p.publishLatency()

	st.PublishRate, st.Deliveries = x.PublishRate, x.Deliveries
	st.P50Ms, st.P99Ms, st.MaxMs, st.PublishP99Ms = x.P50Ms, x.P99Ms, x.MaxMs, x.PublishP99Ms
	st.CPUPerDeliveryUs, st.PGPerDeliveryUs, st.OtherCPU = x.CPUPerDeliveryUs, x.PGCPUPerDeliveryUs, x.OtherCPU
	faults := int64(x.Failed+x.Dropped) + x.Duplicates + x.Reordered + x.Unexpected + x.Gaps + (p.errors - errs)
	o := stepOutcome{Complete: m.Complete, Faults: faults}
	for _, w := range st.WindowP99Ms {
		o.WindowP99s = append(o.WindowP99s, time.Duration(w*1e6))
	}
	st.Pass, st.Why = judge(o, c.P99)
	return st, nil
}

func (st *capacityStep) summary() string {
	verdict := "pass"
	if !st.Pass {
		verdict = "FAIL: " + st.Why
	}
	return fmt.Sprintf("%.0f events/s (published %.0f/s): %d deliveries, p50 %.2f p99 %.2f max %.1f ms (p99 by window %.0f ms), CPU/delivery %.1f µs server, %.1f µs PostgreSQL, other CPU %.2f; %s",
		st.Rate, st.PublishRate, st.Deliveries, st.P50Ms, st.P99Ms, st.MaxMs, st.WindowP99Ms, st.CPUPerDeliveryUs, st.PGPerDeliveryUs, st.OtherCPU, verdict)
}

// printCapacity writes the capacity figures of results, if any: one line
// per target with its capacity, then its steps.
func printCapacity(w io.Writer, results []result) {
	var base float64
	for _, r := range results {
		if r.Capacity != nil && r.Target == "baseline" {
			base = r.Capacity.Capacity
		}
	}
	first := true
	for _, r := range results {
		f := r.Capacity
		if f == nil || r.Error != "" {
			continue
		}
		if first {
			fmt.Fprintf(w, "\ncapacity: the highest events/s over %d streams (one subscriber each) with every event delivered and p99 under %.0f ms\n\n", f.Streams, f.LimitMs)
			fmt.Fprintln(w, "| server | capacity events/s | of the baseline's | server CPU/delivery µs | PostgreSQL CPU/delivery µs | p50 ms | p99 ms | steps (events/s: p99 ms) |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
			first = false
		}
		capacity := fmt.Sprintf("%.0f", f.Capacity)
		if !f.Ceiling {
			capacity = "≥ " + capacity
		}
		steps := ""
		for i, st := range f.Steps {
			if i > 0 {
				steps += ", "
			}
			steps += fmt.Sprintf("%.0f: %.1f", st.Rate, st.P99Ms)
			if !st.Pass {
				steps += " ✗"
			}
		}
		if f.Stopped != "" {
			steps += "; stopped " + f.Stopped
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Target, capacity, ratio(f.Capacity, base),
			num(r.CPUPerDeliveryUs, "%.1f"), num(r.dbCPUPerDeliveryUs(), "%.1f"), num(r.P50Ms, "%.2f"), num(r.P99Ms, "%.2f"), steps)
	}
}
