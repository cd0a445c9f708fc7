package metricstest

import (
	"encoding/json"
	"os"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// Find returns the first series of mf whose labels include the pairs
// name, value, name, value… in labels; nil when there is none.
func Find(mf *dto.MetricFamily, labels ...string) *dto.Metric {
series:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue series
			}
		}
		return m
	}
	return nil
}

// Value returns a counter's or gauge's value (sum 0), or a histogram's
// sample count and sum; ok is false for any other kind of series.
func Value(m *dto.Metric) (v, sum float64, ok bool) {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue(), 0, true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), 0, true
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum(), true
	}
	return 0, 0, false
}

// Query is one PromQL expression of the Grafana dashboard and the title of
// its panel.
type Query struct{ Panel, Expr string }

// DashboardQueries returns every query of the Grafana dashboard at path,
// in panel order.
func DashboardQueries(t testing.TB, path string) []Query {
	t.Helper()
	raw, err := os.ReadFile(path)
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
	var qs []Query
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			qs = append(qs, Query{Panel: p.Title, Expr: tg.Expr})
		}
	}
	require.NotEmpty(t, qs, "no queries in %s", path)
	return qs
}
