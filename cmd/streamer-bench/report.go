package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// summary is a result on one line, for progress output.
func (r *result) summary() string {
	s := fmt.Sprintf("held %d/%d (failed %d, dropped %d)", r.Held, r.Conns, r.Failed, r.Dropped)
	if r.RSSPerConnKiB != 0 {
		s += fmt.Sprintf(", RSS %.1f KiB/conn", r.RSSPerConnKiB)
	}
	if r.Deliveries > 0 {
		s += fmt.Sprintf(", %d deliveries, %.2f us CPU/delivery (PostgreSQL %.2f), p50 %.2f p99 %.2f max %.1f ms, missing %d dup %d",
			r.Deliveries, r.CPUPerDeliveryUs, r.PGCPUPerDeliveryUs, r.P50Ms, r.P99Ms, r.MaxMs, r.Missing, r.Duplicates)
	}
	if f := r.Capacity; f != nil {
		s += fmt.Sprintf(", capacity %.0f events/s (ceiling found: %v)", f.Capacity, f.Ceiling)
	}
	if f := r.Replay; f != nil {
		s += fmt.Sprintf(", caught up %v in %.1fs, max pool conns %d (of %d), live p99 quiet %.2f storm %.2f ms",
			f.AllCaughtUp, f.CatchUpSeconds, f.MaxPGConns, f.PoolSize, f.QuietP99Ms, f.StormP99Ms)
	}
	return s
}

// ok reports whether the result shows no delivery fault.
func (r *result) ok() bool {
	return r.Error == "" && r.Failed == 0 && r.Dropped == 0 && r.Missing == 0 && r.Duplicates == 0 &&
		r.Reordered == 0 && r.Unexpected == 0 && r.Leaked == 0 && r.Gaps == 0 && r.Complete &&
		(r.Replay == nil || (r.Replay.AllCaughtUp && r.Replay.MaxPGConns <= r.Replay.PoolSize))
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func num(v float64, format string) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// printTable writes the results as a Markdown table, each scenario's
// streamer row followed by the baseline's and their ratio, then the details.
func printTable(w io.Writer, results []result) {
	fmt.Fprintln(w, "| scenario | server | conns held | RSS/conn KiB | CPU/delivery µs | PostgreSQL CPU/delivery µs (ratio: server+PostgreSQL) | deliveries/s | p50 ms | p99 ms | max ms | missing | dup | other CPU (load) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	byScenario := map[string]map[string]*result{}
	var order []string
	for i := range results {
		r := &results[i]
		if byScenario[r.Scenario] == nil {
			byScenario[r.Scenario] = map[string]*result{}
			order = append(order, r.Scenario)
		}
		byScenario[r.Scenario][r.Target] = r
	}
	for _, sc := range order {
		rows := byScenario[sc]
		for _, kind := range []string{"streamer", "baseline", "floor"} {
			r := rows[kind]
			if r == nil {
				continue
			}
			if r.Error != "" {
				line, _, _ := strings.Cut(r.Error, "\n") // the table has one line per row
				fmt.Fprintf(w, "| %s | %s | FAILED: %s ||||||||||\n", sc, kind, strings.ReplaceAll(line, "|", "/"))
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %d | %d | %.2f (%.1f) |\n",
				sc, kind, r.Held, r.Conns, num(r.RSSPerConnKiB, "%.1f"), num(r.CPUPerDeliveryUs, "%.2f"), num(r.dbCPUPerDeliveryUs(), "%.2f"),
				num(r.DeliveriesPerSec, "%.0f"), num(r.P50Ms, "%.2f"), num(r.P99Ms, "%.2f"), num(r.MaxMs, "%.1f"),
				r.Missing, r.Duplicates, r.OtherCPU, max(r.LoadStart, r.LoadEnd))
		}
		if anon := byScenario[authScenarios[sc]]; anon != nil {
			if a, s := anon["streamer"], rows["streamer"]; a != nil && s != nil && a.Error == "" && s.Error == "" {
				fmt.Fprintf(w, "| %s | **auth/anon** (%s) | | %s | %s | %s | %s | %s | %s | %s | | | |\n", sc, authScenarios[sc],
					ratio(s.RSSPerConnKiB, a.RSSPerConnKiB), ratio(s.CPUPerDeliveryUs, a.CPUPerDeliveryUs),
					ratio(s.CPUPerDeliveryUs+s.dbCPUPerDeliveryUs(), a.CPUPerDeliveryUs+a.dbCPUPerDeliveryUs()),
					ratio(s.DeliveriesPerSec, a.DeliveriesPerSec), ratio(s.P50Ms, a.P50Ms), ratio(s.P99Ms, a.P99Ms), ratio(s.MaxMs, a.MaxMs))
			}
		}
		b := rows["baseline"]
		for _, kind := range []string{"streamer", "floor"} {
			s := rows[kind]
			if s != nil && b != nil && s.Error == "" && b.Error == "" {
				fmt.Fprintf(w, "| %s | **%s/baseline** | | %s | %s | %s | %s | %s | %s | %s | | | |\n", sc, kind,
					ratio(s.RSSPerConnKiB, b.RSSPerConnKiB), ratio(s.CPUPerDeliveryUs, b.CPUPerDeliveryUs),
					ratio(s.CPUPerDeliveryUs+s.dbCPUPerDeliveryUs(), b.CPUPerDeliveryUs+b.dbCPUPerDeliveryUs()),
					ratio(s.DeliveriesPerSec, b.DeliveriesPerSec), ratio(s.P50Ms, b.P50Ms), ratio(s.P99Ms, b.P99Ms), ratio(s.MaxMs, b.MaxMs))
			}
		}
	}
	fmt.Fprintln(w)
	for i := range results {
		r := &results[i]
		fmt.Fprintf(w, "- %s / %s: ", r.Scenario, r.Target)
		if r.Error != "" {
			fmt.Fprintf(w, "FAILED: %s\n", r.Error)
			continue
		}
		fmt.Fprintf(w, "opened in %.1fs; RSS %d→%d KiB (peak %d), anon %.1f KiB/conn; window %.1fs: server CPU %.2fs",
			r.OpenSeconds, r.RSSBaseKiB, r.RSSKiB, r.RSSPeakKiB, r.AnonPerConnKiB, r.Window, r.ServerCPU)
		if r.PGCPU > 0 {
			fmt.Fprintf(w, ", PostgreSQL CPU %.2fs", r.PGCPU)
			if r.Deliveries > 0 {
				fmt.Fprintf(w, " (%.2f µs/delivery", r.PGCPUPerDeliveryUs)
				if len(r.PGByBackendUs) > 0 {
					fmt.Fprintf(w, "; by backend: %s", formatByRole(r.PGByBackendUs))
				}
				fmt.Fprint(w, ")")
			}
		}
		fmt.Fprintf(w, ", client CPU %.2fs", r.ClientCPU)
		if r.ServerWrites > 0 && r.Deliveries > 0 {
			fmt.Fprintf(w, "; server write calls %d (%.2f per delivery)", r.ServerWrites, float64(r.ServerWrites)/float64(r.Deliveries))
		}
		if r.Published > 0 {
			fmt.Fprintf(w, "; published %d (%.1f/s, %d errors; publish call p50/p99 %.2f/%.2f ms)", r.Published, r.PublishRate, r.PublishErrors, r.PublishP50Ms, r.PublishP99Ms)
		}
		if r.MinMs > 0 {
			fmt.Fprintf(w, "; fastest delivery %.2f ms", r.MinMs)
		}
		if r.DBReads > 0 {
			fmt.Fprintf(w, "; server DB reads %d (%.2f ms each", r.DBReads, r.DBReadMs/float64(r.DBReads))
			if len(r.DBStatements) > 0 {
				keys := slices.Sorted(maps.Keys(r.DBStatements))
				for _, q := range keys {
					fmt.Fprintf(w, "; %d × %q", r.DBStatements[q], q)
				}
			}
			fmt.Fprint(w, ")")
		}
		if r.TickCalls > 0 && r.Window > 0 {
			fmt.Fprintf(w, "; ticks %.1f/s numbering, %.1f/s called (%.3f ms each)",
				float64(r.Ticks)/r.Window, float64(r.TickCalls)/r.Window, r.TickMs/float64(r.TickCalls))
		}
		if len(r.TickNotes) > 0 {
			fmt.Fprint(w, "; tick notes")
			for i, o := range slices.Sorted(maps.Keys(r.TickNotes)) {
				if i > 0 {
					fmt.Fprint(w, ",")
				}
				fmt.Fprintf(w, " %s %d", o, r.TickNotes[o])
			}
		}
		if r.Reordered+r.Unexpected+r.Leaked+r.Gaps > 0 || !r.Complete {
			fmt.Fprintf(w, "; complete %v, reordered %d, unexpected %d, leaked %d, gaps %d", r.Complete, r.Reordered, r.Unexpected, r.Leaked, r.Gaps)
		}
		if f := r.Replay; f != nil {
			fmt.Fprintf(w, "; replay: %d clients × %d behind caught up %v in %.1fs (%.0f replayed events/s), errors %d, "+
				"read pool connections max %d (active %d; STREAMER_DB_MAX_CONNS %d), all server connections max %d, live p50/p99 quiet %.2f/%.2f ms, storm %.2f/%.2f ms (max %.1f)",
				f.Clients, f.Behind, f.AllCaughtUp, f.CatchUpSeconds, f.ReplayPerSec, f.Errors,
				f.MaxPGConns, f.MaxPGActive, f.PoolSize, f.MaxPGAll, f.QuietP50Ms, f.QuietP99Ms, f.StormP50Ms, f.StormP99Ms, f.StormMaxMs)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "; %s", n)
		}
		fmt.Fprintln(w)
	}
	printCapacity(w, results)
	printProxyTable(w, results)
}
