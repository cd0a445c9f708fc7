package metrics_test

import (
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics/metricstest"
)

// dashboardExprs returns every PromQL expression of docs/grafana-dashboard.json.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, q := range metricstest.DashboardQueries(t, "../../docs/grafana-dashboard.json") {
		exprs = append(exprs, q.Expr)
	}
	return exprs
}

var seriesName = regexp.MustCompile(`\b(?:streamer|go|process)_[a-z_]+`)

// TestDashboardUsesRealSeries: every series the dashboard queries exists,
// and every contract series is on the dashboard.
func TestDashboardUsesRealSeries(t *testing.T) {
	t.Parallel()
	fams := allFamilies(t)
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
