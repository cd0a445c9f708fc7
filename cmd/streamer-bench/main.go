// Command streamer-bench is streamer's load tool. It measures a streamer
// server (built from ./cmd/streamer, run as its own process on a local
// PostgreSQL) and, side by side, a minimal net/http SSE broadcaster with no
// database (the baseline), in the same scenarios with the same clients, and
// prints a table of the figures with their ratios. docs/benchmarks.md has
// the latest figures and what they mean.
//
//	streamer-bench [flags]          run the scenarios (see -help)
//	streamer-bench -smoke           the same with tiny numbers, in seconds
//	streamer-bench client           a client worker (started by the tool)
//	streamer-bench baseline-server  the baseline server (started by the tool)
//	streamer-bench floor-server     the floor reference (started by the tool)
//
// Everything runs on 127.0.0.1, and every run is bounded by -timeout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/refserver"
	"github.com/streamer-dev/streamer/internal/commalist"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if role := os.Getenv(roleEnv); role != "" {
		return runRole(role, args)
	}
	if len(args) > 0 {
		switch args[0] {
		case "client", "baseline-server", "floor-server":
			return runRole(args[0], args[1:])
		}
	}
	return benchMain(args, stdout, stderr)
}

// runRole runs a helper process: what the tool starts itself as.
func runRole(role string, args []string) int {
	switch role {
	case "client":
		return client.Main(args)
	case "baseline-server":
		return refserver.BaselineMain(args)
	case "floor-server":
		return refserver.FloorMain(args)
	default:
		fmt.Fprintf(os.Stderr, "streamer-bench: unknown role %q\n", role)
		return 2
	}
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("streamer-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// -smoke changes the defaults, so it is looked for before parsing;
	// flags given with it still win.
	full := fullConfig()
	for _, a := range args {
		if a == "-smoke" || a == "--smoke" || a == "-smoke=true" || a == "--smoke=true" {
			full = smokeConfig()
		}
	}
	fs.Bool("smoke", false, "tiny numbers: every scenario in a few seconds (the defaults shown are the full run's)")
	c := &config{}
	scenarios := fs.String("scenarios", strings.Join(full.Scenarios, ","), "scenarios to run: idle, idle-burst, fanout, fanout-auth (fanout with a token per client and half the events for half of them), fanout-fast, fanout-fast-auth, fanout-fast-uncapped, streams, replay, slow, slow-uncapped, capacity, nginx (fanout-fast on two instances behind nginx, beside one direct); not run unless named: streams-nginx (streams on two instances behind nginx)")
	targets := fs.String("targets", strings.Join(full.Targets, ","), "servers to measure: streamer, baseline, floor (a reference: one write(2) per delivery and nothing else)")
	fs.StringVar(&c.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL to use (env DATABASE_URL); empty: start a throwaway local cluster")
	fs.StringVar(&c.ServerBin, "server-bin", "", "streamer binary to run; empty: go build ./cmd/streamer")
	fs.StringVar(&c.ServerSrc, "server-src", "", "build cmd/streamer from the module in this directory (another checkout, for before/after figures); empty: the current one")
	fs.StringVar(&c.Profile, "profile", "", "directory: profile the servers (pprof CPU during each window, heap after idle); the figures of a profiled run are not for reporting")
	out := fs.String("out", "", "also write the results as JSON to this file")
	fs.DurationVar(&c.Timeout, "timeout", full.Timeout, "bound on the whole run")
	fs.IntVar(&c.MaxConnections, "max-connections", full.MaxConnections, "STREAMER_MAX_CONNECTIONS of the server under test")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", full.DBMaxConns, "STREAMER_DB_MAX_CONNS of the server under test (its read pool; replay checks the pool stays within it)")
	fs.IntVar(&c.ConnsPerWorker, "conns-per-worker", full.ConnsPerWorker, "connections per client process (at most ~19,000: 20,000 descriptors per process)")
	fs.IntVar(&c.DialParallel, "dial-parallel", full.DialParallel, "connection attempts in flight per client process")
	fs.IntVar(&c.ReadBuffer, "read-buffer", full.ReadBuffer, "client read buffer per connection, bytes")
	fs.IntVar(&c.Payload, "payload", full.Payload, "bytes of data per event")
	fs.DurationVar(&c.Settle, "settle", full.Settle, "pause after starting a server and after opening connections")
	fs.DurationVar(&c.Drain, "drain", full.Drain, "how long to wait for the last events after publishing stops")
	fs.DurationVar(&c.Measure, "measure", full.Measure, "publishing window of fanout, fanout-fast and streams")
	fs.IntVar(&c.IdleConns, "idle-conns", full.IdleConns, "idle: connections")
	fs.DurationVar(&c.IdleHold, "idle-hold", full.IdleHold, "idle: how long they are held")
	fs.IntVar(&c.BurstConns, "burst-conns", full.BurstConns, "idle-burst: connections opened at once (each worker dials all of its own in parallel)")
	fs.IntVar(&c.SlowConns, "slow-conns", full.SlowConns, "slow, slow-uncapped: clients that stop reading")
	fs.IntVar(&c.FanoutConns, "fanout-conns", full.FanoutConns, "fanout: subscribers of one stream")
	fs.Float64Var(&c.FanoutRate, "fanout-rate", full.FanoutRate, "fanout: events/s")
	fs.IntVar(&c.FastConns, "fast-conns", full.FastConns, "fanout-fast: subscribers of one stream")
	fs.Float64Var(&c.FastRate, "fast-rate", full.FastRate, "fanout-fast: events/s")
	fs.IntVar(&c.Streams, "streams", full.Streams, "streams: streams, one subscriber each")
	fs.Float64Var(&c.StreamsRate, "streams-rate", full.StreamsRate, "streams: events/s over all streams, round robin")
	fs.IntVar(&c.ReplayClients, "replay-clients", full.ReplayClients, "replay: clients reconnecting at once")
	fs.IntVar(&c.ReplayBehind, "replay-behind", full.ReplayBehind, "replay: events each is behind")
	fs.IntVar(&c.ReplayBatch, "replay-batch", full.ReplayBatch, "replay: events per transaction of the backlog")
	fs.IntVar(&c.ReplayLive, "replay-live", full.ReplayLive, "replay: live subscribers of another stream")
	fs.Float64Var(&c.ReplayLiveRate, "replay-live-rate", full.ReplayLiveRate, "replay: events/s on the live stream")
	fs.Float64Var(&c.ReplayStreamRate, "replay-stream-rate", full.ReplayStreamRate, "replay: events/s on the replayed stream during the storm")
	fs.DurationVar(&c.ReplayQuiet, "replay-quiet", full.ReplayQuiet, "replay: quiet window for the live subscribers' reference latency")
	fs.DurationVar(&c.ReplayTimeout, "replay-timeout", full.ReplayTimeout, "replay: bound on catching up")
	capacityFlags(fs, &c.Capacity, full.Capacity)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streamer-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	c.Scenarios = commalist.Split(*scenarios)
	c.Targets = commalist.Split(*targets)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	machine, results, err := runBench(ctx, *c, stderr)
	fmt.Fprintf(stdout, "\nstreamer-bench: %d scenario runs in %v (load average now %.2f)\n%s\n\n", len(results), time.Since(start).Round(time.Second), loadAvg(), machine)
	printTable(stdout, results)
	if *out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if werr := os.WriteFile(*out, b, 0o644); werr != nil {
			fmt.Fprintln(stderr, "streamer-bench:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "streamer-bench:", err)
		return 1
	}
	// Faults of the server under test fail the run; the baseline's (it drops
	// a subscriber whose channel is full) are only reported.
	code := 0
	for i := range results {
		if r := &results[i]; !r.ok() {
			fmt.Fprintf(stderr, "streamer-bench: %s on %s: delivery faults or errors (see the table)\n", r.Scenario, r.Target)
			if r.Target == "streamer" {
				code = 1
			}
		}
	}
	return code
}
