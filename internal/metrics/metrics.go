// Package metrics serves streamer's Prometheus metrics from a registry of
// its own (never the global default one).
//
// # Overview
//
// The series are read from the running services when scraped (gauge
// functions), so nothing is added to the delivery path. Go runtime and
// process collectors are included. The full list of series is a later
// issue's; these are the ones an operator needs first.
//
// # Invariants
//
//   - Every series is prefixed streamer_, go_ or process_.
//   - A nil source function is skipped, never called.
package metrics

import (
	"net/http"

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
}

// Handler returns the /metrics handler for src.
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
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
	if f := src.ListenerConnected; f != nil {
		gauge("streamer_listener_connected", "1 while the LISTEN connection is up, else 0.", func() float64 {
			if f() {
				return 1
			}
			return 0
		})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
