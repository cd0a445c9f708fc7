package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestMetricsPage opens the metrics page (/ui/metrics) in Chromium against
// a real server, holds three SSE connections open and publishes events
// over several scrape intervals, and checks that the page plots what
// /metrics says: three connections, deliveries per second, a delivery lag
// p99, and the delivered total. With UPDATE_SCREENSHOT=1 it writes
// docs/metrics.png.
func TestMetricsPage(t *testing.T) {
	bin := buildServer(t, t.TempDir())
	tb := newTab(t, newBrowser(t))
	d := deploy(t, bin)

	const conns, perRound = 3, 5 // events per round, in one POST /publish
	rounds := 12
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		rounds = 60 // a longer history for the picture
	}
	for range conns {
		holdSSE(t, d.url+"/events?stream=dash")
	}
	tb.do(
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate(d.url+"/ui/metrics?interval=300"),
	)
	require.Equal(t, "streamer metrics", eval[string](tb, `document.title`))
	tb.waitJS(shortWait, "three connections plotted",
		`document.getElementById("chart-connections").dataset.value === "3"`)

	// Publish over several scrapes, each round after the page took a new
	// sample, so the rates and the lag have intervals to be computed over.
	samples := func() int {
		n, err := strconv.Atoi(eval[string](tb, `document.getElementById("charts").dataset.samples`))
		require.NoError(t, err)
		return n
	}
	for r := range rounds {
		var batch []string
		for i := range perRound {
			batch = append(batch, fmt.Sprintf(`{"stream":"dash","data":"round %d, event %d"}`, r, i))
		}
		postPublish(t, d.url, "["+strings.Join(batch, ",")+"]")
		tb.waitJS(shortWait, "the next sample", fmt.Sprintf(
			`Number(document.getElementById("charts").dataset.samples) > %d`, samples()))
	}
	tb.waitJS(shortWait, "the delivered total",
		fmt.Sprintf(`document.querySelector('[data-series="streamer_events_delivered_total"]')?.textContent === "%d"`,
			conns*rounds*perRound))
	tb.waitJS(shortWait, "the published total",
		fmt.Sprintf(`document.querySelector('[data-series="streamer_publish_events_total"]')?.textContent === "%d"`,
			rounds*perRound))
	tb.waitJS(shortWait, "deliveries per second plotted",
		`Number(document.getElementById("chart-deliveries").dataset.max) > 0`)
	tb.waitJS(shortWait, "a delivery lag p99 plotted",
		`Number(document.getElementById("chart-lag").dataset.max) > 0`)
	require.Equal(t, "open", eval[string](tb, `document.getElementById("scrape-state").dataset.state`))
	require.Positive(t, eval[int](tb, `document.querySelectorAll("#chart-deliveries svg path.main").length`))
	tb.requireNoCSPViolations()

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		requirePNG(t, shot, 1200)
		require.Less(t, len(shot), maxScreenshotBytes)
		path := filepath.Join("..", "..", "docs", "metrics.png")
		require.NoError(t, os.WriteFile(path, shot, 0o644))
		t.Logf("wrote %s (%d KiB)", path, len(shot)>>10)
	}
}

// postPublish sends one POST /publish and requires a 200.
func postPublish(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
}

// holdSSE opens an SSE connection and reads it until the test ends.
func holdSSE(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(io.Discard, resp.Body) })
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		wg.Wait()
	})
}
