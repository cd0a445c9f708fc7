package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// TestE2E builds the server once and runs each scenario against its own
// process and database. The browser scenarios share one Chromium.
func TestE2E(t *testing.T) {
	bin := buildServer(t, t.TempDir())

	t.Run("browser", func(t *testing.T) {
		browser := newBrowser(t)
		for _, tc := range []struct {
			name string
			run  func(t *testing.T, bin string, tb *tab)
		}{
			{"inspector shows events published with SQL", testInspectorShowsEvents},
			{"inspector across a server restart", testInspectorAcrossRestart},
			{"inspector publish form", testInspectorPublishForm},
			{"inspector SSE parser", testInspectorSSEParser},
			{"inspector reauth with a pasted token", testInspectorReauth},
			{"streamer.js page-born-stale token", testStaleToken},
			{"streamer.js recovers when EventSource gives up", testClientRecovers},
			{"streamer.js reconnects with a fresh token after reauth", testClientReauth},
			{"inspector screenshot", testScreenshot},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, bin, newTab(t, browser))
			})
		}
	})

	t.Run("independent client", func(t *testing.T) {
		for _, c := range []struct {
			name string
			dial dialer
		}{
			{"tmaxmax/go-sse", dialGoSSE},
			{"launchdarkly/eventsource", dialLaunchDarkly},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				testIndependentClientResume(t, bin, c.dial)
			})
		}
	})
}

// requireOrdered requires the tokens to be strictly increasing positions.
func requireOrdered(t testing.TB, tokens []string) {
	t.Helper()
	var prev cursor.Position
	for i, tok := range tokens {
		pos, err := cursor.Parse(tok)
		require.NoError(t, err, "token %d", i)
		if i > 0 {
			require.True(t, prev.Less(pos), "token %d (%s) not after token %d (%s)", i, tok, i-1, tokens[i-1])
		}
		prev = pos
	}
}

// Timeouts of waits on a page or a client; generous for a busy CI machine.
const (
	shortWait = 10 * time.Second
	longWait  = 30 * time.Second
)
