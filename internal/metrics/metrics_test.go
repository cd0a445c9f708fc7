package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(metrics.Handler(metrics.Sources{
		OpenStreams:       func() int { return 7 },
		LiveSubscribers:   func() int { return 5 },
		LiveStreams:       func() int { return 2 },
		ListenerConnected: func() bool { return true },
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, want := range []string{
		"streamer_sse_connections 7",
		"streamer_subscribers_live 5",
		"streamer_streams_live 2",
		"streamer_listener_connected 1",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		require.Contains(t, string(body), want)
	}
}

func TestNilSourcesAreSkipped(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	metrics.Handler(metrics.Sources{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), "streamer_")
}
