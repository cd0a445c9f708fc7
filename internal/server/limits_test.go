package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/batch"
	"github.com/streamer-dev/streamer/internal/server"
)

// rawRequest sends req on a new connection and returns the response.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(nc, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func requireJSONError(t *testing.T, resp *http.Response, status int, want string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body struct{ Error string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Contains(t, body.Error, want)
}

func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, server.Config{MaxHeaderBytes: 4 << 10})
	ok := rawRequest(t, srv.Addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("a", 1<<10)+"\r\n\r\n")
	require.Equal(t, http.StatusOK, ok.StatusCode)
	// net/http allows 4 KiB of slack beyond MaxHeaderBytes.
	big := rawRequest(t, srv.Addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, big.StatusCode)
}

func TestQueryLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, server.Config{MaxQueryBytes: 1 << 10})
	q := "stream=a&pad=" + strings.Repeat("b", 1<<10)
	resp := rawRequest(t, srv.Addr(), "GET /events?"+q+" HTTP/1.1\r\nHost: x\r\n\r\n")
	requireJSONError(t, resp, http.StatusRequestURITooLong, "query string")
	// Just within the bound it is accepted.
	q = q[:1<<10]
	resp = rawRequest(t, srv.Addr(), "GET /events?"+q+" HTTP/1.1\r\nHost: x\r\n\r\n")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestIdleTimeout: a keep-alive connection with no next request is closed.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	srv := newServer(t, server.Config{IdleTimeout: 100 * time.Millisecond})
	nc, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "kept alive")
	// The server closes the idle connection: EOF, not our 10s deadline.
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
}

// blockingPublisher holds every Publish until release is closed.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (p *blockingPublisher) Publish(ctx context.Context, events []batch.Event) ([]int64, error) {
	p.entered <- struct{}{}
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return make([]int64, len(events)), nil
}

func TestPublishConcurrencyLimit(t *testing.T) {
	t.Parallel()
	pub := &blockingPublisher{entered: make(chan struct{}, 2), release: make(chan struct{})}
	srv := newServer(t, server.Config{Publish: server.PublishConfig{
		Publisher: pub, AllowAnonymous: true, MaxConcurrent: 2}})
	url := "http://" + srv.Addr() + "/publish"
	body := `{"stream":"s","data":"x"}`

	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() { codes[i] = postWith(t, url, "application/json", body).status })
	}
	<-pub.entered
	<-pub.entered // both slots taken
	over := postWith(t, url, "application/json", body)
	require.Equal(t, http.StatusServiceUnavailable, over.status)
	require.NotEmpty(t, over.header.Get("Retry-After"))
	require.Contains(t, over.Error, "publish requests at once")

	close(pub.release)
	wg.Wait()
	require.Equal(t, []int{http.StatusOK, http.StatusOK}, codes)
	require.Equal(t, http.StatusOK, postWith(t, url, "application/json", body).status, "slots are given back")
}

// TestPublishBodyTimeout: a body that does not arrive in time is refused
// with 408 and frees its slot.
func TestPublishBodyTimeout(t *testing.T) {
	t.Parallel()
	pub := &blockingPublisher{entered: make(chan struct{}, 1), release: make(chan struct{})}
	close(pub.release)
	srv := newServer(t, server.Config{Publish: server.PublishConfig{
		Publisher: pub, AllowAnonymous: true, MaxConcurrent: 1, Timeout: 200 * time.Millisecond}})
	resp := rawRequest(t, srv.Addr(), "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	requireJSONError(t, resp, http.StatusRequestTimeout, "body not received")
	ok := postWith(t, "http://"+srv.Addr()+"/publish", "application/json", `{"stream":"s","data":"x"}`)
	require.Equal(t, http.StatusOK, ok.status, fmt.Sprint(ok.Error))
}
