package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics"
)

// dashboardExprs returns every PromQL expression of docs/grafana-dashboard.json.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			exprs = append(exprs, tg.Expr)
		}
	}
	require.NotEmpty(t, exprs)
	return exprs
}

var seriesName = regexp.MustCompile(`\b(?:streamer|go|process)_[a-z_]+`)

// TestDashboardUsesRealSeries: every series the dashboard queries exists,
// and every contract series is on the dashboard.
func TestDashboardUsesRealSeries(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Sources{
		OpenStreams: func() int { return 0 }, LiveSubscribers: func() int { return 0 },
		LiveStreams: func() int { return 0 }, ListenerConnected: func() bool { return false },
	})
	fams := families(t, m)
	exists := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if mf, ok := fams[base]; ok && mf.GetType() == dto.MetricType_HISTOGRAM {
					return true
				}
			}
		}
		return false
	}
	used := map[string]bool{}
	for _, expr := range dashboardExprs(t) {
		for _, name := range seriesName.FindAllString(expr, -1) {
			require.True(t, exists(name), "the dashboard queries %s, which /metrics does not serve (in %s)", name, expr)
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, suffix)
			}
			used[name] = true
		}
	}
	for _, name := range contractSeries {
		require.True(t, used[name], "the dashboard does not show %s", name)
	}
}
