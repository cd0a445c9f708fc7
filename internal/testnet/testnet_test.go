package testnet

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBreakable(t *testing.T) {
	t.Parallel()
	got := make(chan *Breakable, 1)
	ln, err := ListenBreakable(got)(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := <-got
	require.Same(t, b, ln)

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.Accept()
	require.NoError(t, err, "accepts until broken")
	s.Close()

	require.NoError(t, b.Break())
	_, err = ln.Accept()
	require.ErrorIs(t, err, ErrAcceptBroken)
}
