package sse

import (
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHubSlowConsumerAborts: a slow consumer's connection is reset (the
// kernel drops what it held for the client), while any other end of a
// stream is an orderly close that delivers everything written.
func TestHubSlowConsumerAborts(t *testing.T) {
	t.Parallel()
	c, client, closed := attached(t, Options{MaxQueueBytes: 64 << 10})
	frame := AppendEvent(nil, "", "", strings.Repeat("x", 16<<10))
	for c.Err() == nil {
		c.Enqueue(frame)
	}
	require.ErrorIs(t, <-closed, ErrSlowConsumer)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := io.Copy(io.Discard, client)
	require.ErrorIs(t, err, syscall.ECONNRESET, "the slow consumer's connection ends with RST")

	c, client, closed = attached(t, Options{})
	c.Enqueue(frame)
	c.CloseAfter(frame)
	require.NotErrorIs(t, <-closed, ErrSlowConsumer)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, err := io.Copy(io.Discard, client)
	require.NoError(t, err, "an orderly end is a FIN")
	require.Equal(t, int64(2*len(frame)), n)
}
