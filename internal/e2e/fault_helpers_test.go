package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/testenv"
)

// chaos reports whether the long versions of the fault tests run
// (STREAMER_CHAOS=1, as make chaos sets it).
func chaos() bool { return testenv.Flag("STREAMER_CHAOS") }

// withFaultProxy puts a fault proxy between the server and its database:
// the server's DATABASE_URL points at the proxy, which dials the real
// server (TCP, or the unix socket of pgtest's throwaway cluster). The test's
// own pool (deployment.pool) stays direct. *out is set to the proxy, which
// is closed after the server has stopped.
func withFaultProxy(t *testing.T, out **faultproxy.Proxy) deployOption {
	return func(env map[string]string) {
		p, proxied, err := faultproxy.StartFor(env["DATABASE_URL"])
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, p.Close()) })
		env["DATABASE_URL"] = proxied
		*out = p
	}
}

// byApp returns the proxy's open connections whose startup message sets
// application_name to app ("streamer-listener", "streamer",
// "streamer-publish": see cmd/streamer/serve.go and internal/listener).
func byApp(p *faultproxy.Proxy, app string) []*faultproxy.Conn {
	marker := []byte("application_name\x00" + app + "\x00")
	var out []*faultproxy.Conn
	for _, c := range p.Conns() {
		if bytes.Contains(c.Head(), marker) {
			out = append(out, c)
		}
	}
	return out
}

// kill sends SIGKILL to the server and waits for it to be gone.
func (d *deployment) kill() {
	t := d.t
	t.Helper()
	p := d.take()
	require.NoError(t, syscall.Kill(p.Pid, syscall.SIGKILL))
	<-p.Done()
}

// readyz returns /readyz's status, or 0 when the request fails. A server
// process that has exited on its own fails the test at once, saying how.
func (d *deployment) readyz() int {
	client := &http.Client{Timeout: 3 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(d.url + "/readyz")
	if err != nil {
		d.requireRunning()
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// publishReply is an answer to POST /publish.
type publishAnswer struct {
	status     int
	retryAfter string
	body       string
	took       time.Duration
}

// postPublish publishes one event through HTTP, giving up after timeout.
func (d *deployment) postPublish(t *testing.T, stream, data string, timeout time.Duration) publishAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	body := fmt.Sprintf(`{"stream":%q,"data":%q}`, stream, data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/publish", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{}
	defer client.CloseIdleConnections()
	began := time.Now()
	resp, err := client.Do(req)
	require.NoError(t, err, "POST /publish did not answer within %v", timeout)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return publishAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b.String(), took: time.Since(began)}
}
