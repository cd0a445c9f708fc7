package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/childproc"
	"github.com/streamer-dev/streamer/internal/metrics/metricstest"
	"github.com/streamer-dev/streamer/internal/syncbuf"
	"github.com/streamer-dev/streamer/internal/testenv"
)

// prometheusPath returns the Prometheus server to scrape with:
// STREAMER_PROMETHEUS, else Debian's /usr/bin/prometheus, else prometheus
// on PATH.
func prometheusPath() (string, error) {
	return toolPath("STREAMER_PROMETHEUS", "/usr/bin/prometheus", "prometheus")
}

// TestDashboardOnPrometheus has a real Prometheus (Debian's package)
// scrape a real server under a known workload, then runs every query of
// docs/grafana-dashboard.json against it: each must parse and return
// series, and the key ones the values the workload implies. Without a
// Prometheus it skips, or fails under CI=true (make deps installs one).
func TestDashboardOnPrometheus(t *testing.T) {
	promBin, err := prometheusPath()
	if err != nil {
		testenv.Unavailable(t, "no Prometheus to scrape with (make deps, or set STREAMER_PROMETHEUS): %v", err)
	}
	bin := buildServer(t, t.TempDir())
	d := deploy(t, bin)
	prom := startPrometheus(t, promBin, d.addr)

	const conns, rounds, perRound = 3, 6, 5
	for range conns {
		holdSSE(t, d.url+"/events?stream=prom")
	}
	for r := range rounds {
		var batch []string
		for i := range perRound {
			batch = append(batch, fmt.Sprintf(`{"stream":"prom","data":"%d.%d"}`, r, i))
		}
		postPublish(t, d.url, "["+strings.Join(batch, ",")+"]")
		// Wait for Prometheus to have scraped this round, so the
		// workload spreads over several scrapes.
		want := float64((r + 1) * perRound * conns)
		require.Eventually(t, func() bool {
			v, ok := prom.scalar(t, "sum(streamer_events_delivered_total)")
			// The lag is observed once the frames are written, just after
			// they were counted as delivered (queued).
			w, wok := prom.scalar(t, "sum(streamer_delivery_lag_seconds_count)")
			return ok && v == want && wok && w == want
		}, longWait, 100*time.Millisecond, "Prometheus never scraped %v deliveries", want)
	}

	grafana := strings.NewReplacer(`$__rate_interval`, "30s", `$instance`, ".*")
	queries := metricstest.DashboardQueries(t, filepath.Join("..", "..", "docs", "grafana-dashboard.json"))
	for _, q := range queries {
		expr := grafana.Replace(q.Expr)
		res := prom.query(t, expr)
		require.NotEmpty(t, res, "panel %q: no series for %s", q.Panel, expr)
	}
	t.Logf("%d dashboard queries answered", len(queries))

	for _, c := range []struct {
		expr  string
		check func(v float64) bool
	}{
		{`sum(streamer_sse_connections)`, func(v float64) bool { return v == conns }},
		{`sum(streamer_subscribers_live)`, func(v float64) bool { return v == conns }},
		{`min(streamer_listener_connected)`, func(v float64) bool { return v == 1 }},
		{`sum(streamer_publish_events_total)`, func(v float64) bool { return v == rounds*perRound }},
		{`sum(streamer_delivery_lag_seconds_count)`, func(v float64) bool { return v == conns*rounds*perRound }},
		{`sum(rate(streamer_events_delivered_total[30s]))`, func(v float64) bool { return v > 0 }},
		{`histogram_quantile(0.99, sum by (le) (rate(streamer_delivery_lag_seconds_bucket[30s])))`,
			func(v float64) bool { return v > 0 && v < 10 }},
	} {
		v, ok := prom.scalar(t, c.expr)
		require.True(t, ok, "no value for %s", c.expr)
		require.True(t, c.check(v), "%s = %v", c.expr, v)
		t.Logf("%s = %g", c.expr, v)
	}
}

// prometheus is a Prometheus server run by a test.
type prometheus struct{ url string }

func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: streamer
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	addr := freeAddr(t)
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	proc, err := childproc.Start(cmd)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = syscall.Kill(proc.Pid, syscall.SIGKILL)
		<-proc.Done()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	p := &prometheus{url: "http://" + addr}
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, longWait, 50*time.Millisecond, "prometheus never became ready")
	return p
}

// query runs an instant query and returns its vector's samples as values.
func (p *prometheus) query(t *testing.T, expr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, "success", out.Status, "%s: %s", expr, out.Error)
	require.Equal(t, "vector", out.Data.ResultType, expr)
	var values []string
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		values = append(values, s)
	}
	return values
}

// scalar runs a query expected to return one sample and returns it.
func (p *prometheus) scalar(t *testing.T, expr string) (float64, bool) {
	t.Helper()
	values := p.query(t, expr)
	if len(values) != 1 {
		return 0, false
	}
	v, err := strconv.ParseFloat(values[0], 64)
	require.NoError(t, err)
	return v, true
}
