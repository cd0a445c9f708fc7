package refserver

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEncodeFrame(t *testing.T) {
	t.Parallel()
	require.Equal(t, "id: 42\ndata: s 1 2 pad\n\n", string(encodeFrame(42, []byte("s 1 2 pad"))))
}

func TestReadPublish(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, body string
		want       []string
		ok         bool
	}{
		{"Lines", "a\tone\nb\ttwo words\n", []string{"a|one", "b|two words"}, true},
		{"Empty", "", nil, true},
		{"NoTab", "a\tone\nbad line\n", []string{"a|one"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			var got []string
			n, ok := readPublish(rec, httptest.NewRequest("POST", "/publish", strings.NewReader(tt.body)),
				func(stream string, data []byte) { got = append(got, stream+"|"+string(data)) })
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
			require.Equal(t, len(tt.want), n)
			if !ok {
				require.Equal(t, http.StatusBadRequest, rec.Code)
			}
		})
	}
}

// TestServers subscribes to each server and publishes: the subscriber
// gets the event of its stream, numbered from 1, and not the other's.
func TestServers(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.Handler{
		"Baseline": func() http.Handler {
			b := &broadcaster{heartbeat: time.Hour, buffer: 4, subs: map[string]map[*baseSub]struct{}{}}
			return routes(b.handleEvents, b.handlePublish)
		}(),
		"Floor": func() http.Handler {
			f := &floorServer{subs: map[string][]*floorSub{}}
			return routes(f.handleEvents, f.handlePublish)
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?stream=s", nil)
			require.NoError(t, err)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			body := bufio.NewReader(resp.Body)
			preamble, err := body.ReadString('\n') // the first comment: subscribed
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(preamble, ":"), preamble)

			pub, err := http.Post(srv.URL+"/publish", "text/plain", strings.NewReader("other\tno\ns\tyes\n"))
			require.NoError(t, err)
			require.NoError(t, pub.Body.Close())
			require.Equal(t, http.StatusOK, pub.StatusCode)

			var lines []string
			for len(lines) < 2 {
				line, err := body.ReadString('\n')
				require.NoError(t, err)
				if line = strings.TrimSuffix(line, "\n"); line != "" && !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "retry:") {
					lines = append(lines, line)
				}
			}
			require.Equal(t, []string{"id: 2", "data: yes"}, lines)
		})
	}
}
