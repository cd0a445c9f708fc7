package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSyscw(t *testing.T) {
	t.Parallel()
	n, err := parseSyscw([]byte("rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 4242\nread_bytes: 0\n"))
	require.NoError(t, err)
	require.Equal(t, int64(4242), n)
	_, err = parseSyscw([]byte("rchar: 1\n"))
	require.Error(t, err)
	_, err = parseSyscw([]byte("syscw: x\n"))
	require.Error(t, err)
}

// TestProcWrites: a write to a file is counted.
func TestProcWrites(t *testing.T) {
	t.Parallel()
	before, err := procWrites(os.Getpid())
	require.NoError(t, err)
	f, err := os.CreateTemp(t.TempDir(), "w")
	require.NoError(t, err)
	for range 3 {
		_, err = f.Write([]byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	after, err := procWrites(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, after-before, int64(3))
}
