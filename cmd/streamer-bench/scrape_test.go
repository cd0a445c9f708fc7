package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScrapeLabelled: a series with one label is read by the label's
// value, other series and other names sharing its prefix are not.
func TestScrapeLabelled(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, strings.Join([]string{
			"# HELP streamer_tick_notes_total Tick notifications.",
			"# TYPE streamer_tick_notes_total counter",
			`streamer_tick_notes_total{outcome="applied"} 1234`,
			`streamer_tick_notes_total{outcome="read"} 5`,
			`streamer_tick_notes_total_other{outcome="read"} 7`,
			`streamer_db_reads_total{kind="live"} 9`,
			"",
		}, "\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	require.Equal(t, map[string]float64{"applied": 1234, "read": 5}, scrapeLabelled(addr, "streamer_tick_notes_total"))
	require.Empty(t, scrapeLabelled(addr, "streamer_absent_total"))
	srv.Close()
	require.Nil(t, scrapeLabelled(addr, "streamer_tick_notes_total"))
}
