package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

// sseFrame is one frame of a raw SSE stream: its id and, for an event, its
// data. Comments and the retry field are skipped.
type sseFrame struct {
	id      string
	data    string
	hasData bool
}

// openSSE connects to url with Last-Event-ID lastID ("" for none) and
// returns the frames as they arrive; the connection ends with the test.
func openSSE(t *testing.T, url, lastID string) <-chan sseFrame {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	frames := make(chan sseFrame, 1<<14)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if f.id != "" || f.hasData {
					frames <- f
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "id: "):
				f.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				f.data, f.hasData = strings.TrimPrefix(line, "data: "), true
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return frames
}

// nextSSE returns the next frame, failing after shortWait.
func nextSSE(t *testing.T, frames <-chan sseFrame) sseFrame {
	t.Helper()
	return testsignal.Receive(t, frames, shortWait, "no frame arrived")
}

// replayReads returns streamer_db_reads_total{kind="replay"} from /metrics.
func replayReads(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `streamer_db_reads_total{kind="replay"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	t.Fatal("no streamer_db_reads_total{kind=\"replay\"} in /metrics")
	return 0
}

// TestAudienceAnonymous runs the real server: events published over HTTP
// with an audience never reach an anonymous connection, which receives the
// public ones in order; after 2,000 hidden events its Last-Event-ID has
// moved past them (an id-only frame, by the next heartbeat), a reconnect
// from it reads one replay page, and the next public event arrives.
func TestAudienceAnonymous(t *testing.T) {
	bin := buildServer(t, t.TempDir())
	d := deploy(t, bin, withEnv("STREAMER_HEARTBEAT", "1s"))
	url := d.url + "/events?stream=aud"
	live := openSSE(t, url, "")
	// The connection is live once a public event reaches it.
	postPublish(t, d.url, `{"stream":"aud","data":"hello"}`)
	require.Equal(t, "hello", nextSSE(t, live).data)

	postPublish(t, d.url, `[
		{"stream":"aud","data":"for A","audience":["user:A"]},
		{"stream":"aud","data":"public 1"},
		{"stream":"aud","data":"for team","audience":["team:7","user:B"]},
		{"stream":"aud","data":"public 2","audience":null}]`)
	first := nextSSE(t, live)
	require.Equal(t, "public 1", first.data)
	require.Equal(t, "public 2", nextSSE(t, live).data)

	var hidden []string
	for i := range 2000 {
		hidden = append(hidden, fmt.Sprintf(`{"stream":"aud","data":"secret %d","audience":["user:A"]}`, i))
	}
	postPublish(t, d.url, "["+strings.Join(hidden, ",")+"]")
	var lastHidden int64
	require.NoError(t, d.pool.QueryRow(context.Background(),
		"SELECT max(id) FROM streamer.events WHERE data = 'secret 1999'").Scan(&lastHidden))
	var last sseFrame
	for !strings.HasSuffix(last.id, fmt.Sprint(".", lastHidden)) {
		last = nextSSE(t, live)
		require.False(t, last.hasData, "an anonymous connection got %q", last.data)
	}

	// Resume from the id-only frame: one replay page, nothing hidden.
	before := replayReads(t, d.url)
	resumed := openSSE(t, url, last.id)
	postPublish(t, d.url, `{"stream":"aud","data":"public 3"}`)
	require.Equal(t, "public 3", nextSSE(t, live).data)
	require.Equal(t, "public 3", nextSSE(t, resumed).data)
	require.Equal(t, before+1, replayReads(t, d.url), "the resume read one page")

	// Resuming from an earlier event replays only the public events after it.
	fromFirst := openSSE(t, url, first.id)
	var got []string
	for len(got) < 2 {
		if f := nextSSE(t, fromFirst); f.hasData {
			got = append(got, f.data)
		}
	}
	require.Equal(t, []string{"public 2", "public 3"}, got)
}
