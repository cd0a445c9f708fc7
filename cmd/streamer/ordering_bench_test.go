package main

import (
	"slices"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/migrations"
)

// BenchmarkPokeLatency measures POST /publish-to-receive at a low rate, one
// event per server every 250 ms: slower than the sequencer's Linger (100
// ms), so in ticks mode every event meets a backed-off sequencer (waiting
// up to IdleInterval, 20 ms). Three servers on databases of their own,
// published to in turn so that they share the machine's load: ticks mode
// with the poke (the default), ticks mode without it, and trigger mode for
// reference. b.N is the number of rounds (one event to each server); run
// with -benchtime 40x or more. Reports the p50 and p90 of each, and the
// ratios of the p50s.
//
//	go test -run '^$' -bench BenchmarkPokeLatency -benchtime 60x ./cmd/streamer/
func BenchmarkPokeLatency(b *testing.B) {
	type target struct {
		name string
		base string
		got  <-chan sseEvent
		lat  []time.Duration
	}
	targets := []*target{{name: "poke"}, {name: "nopoke"}, {name: "trigger"}}
	for _, tg := range targets {
		mode := migrations.Ticks
		if tg.name == "trigger" {
			mode = migrations.Trigger
		}
		noPoke := tg.name == "nopoke"
		tg.base = startServeOn(b, dbIn(b, mode), func(c *serveConfig) { c.noPoke = noPoke },
			"--allow-anonymous-publish", "--shutdown-timeout", "2s", "--log-level", "warn")
		tg.got = subscribeSSE(b, tg.base, "lat", "")
	}
	const perServer = 250 * time.Millisecond
	gap := perServer / time.Duration(len(targets))
	b.ResetTimer()
	for i := range b.N {
		for _, tg := range targets {
			next := time.Now().Add(gap)
			began := time.Now()
			postEvents(b, tg.base, "lat", i, 1)
			nextEvent(b, tg.got)
			tg.lat = append(tg.lat, time.Since(began))
			time.Sleep(time.Until(next))
		}
	}
	b.StopTimer()
	p50 := map[string]float64{}
	for _, tg := range targets {
		slices.Sort(tg.lat)
		q := func(f float64) float64 {
			return float64(tg.lat[int(f*float64(len(tg.lat)-1))]) / float64(time.Millisecond)
		}
		p50[tg.name] = q(0.5)
		b.ReportMetric(q(0.5), "p50-ms-"+tg.name)
		b.ReportMetric(q(0.9), "p90-ms-"+tg.name)
	}
	b.ReportMetric(p50["nopoke"]/p50["poke"], "p50-nopoke/poke")
	b.ReportMetric(p50["poke"]/p50["trigger"], "p50-poke/trigger")
	b.ReportMetric(0, "ns/op")
}
