package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		line string
		want procStat
	}{
		"a bash line": {
			"31793 (bash) S 31776 31793 31793 0 -1 4194560 4700 142622 0 5 1 4 337 63 20 0 1 0 941601 5124096 1011 18446744073709551615 0 0 0 0 0 0 65536 4 1132560123 1 0 0 17 1 0 0 0 0 0\n",
			procStat{pid: 31793, ppid: 31776, utime: 1, stime: 4, cutime: 337, cstime: 63},
		},
		// A backend's title, as PostgreSQL sets it, could hold anything;
		// the command ends at the last ')'.
		"a command with spaces and parentheses": {
			"4242 (postgres: x (y) [local] idle) S 4000 4000 4000 0 -1 4194560 10 0 0 0 250 75 3 2 20 0 1 0 941601 5124096 1011",
			procStat{pid: 4242, ppid: 4000, utime: 250, stime: 75, cutime: 3, cstime: 2},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := parseProcStat([]byte(tc.line))
			require.NoError(t, err)
			assert.Equal(t, tc.want, s)
		})
	}
	t.Run("this process", func(t *testing.T) {
		t.Parallel()
		b, err := os.ReadFile("/proc/self/stat")
		require.NoError(t, err)
		s, err := parseProcStat(b)
		require.NoError(t, err)
		assert.Equal(t, os.Getpid(), s.pid)
		assert.Equal(t, os.Getppid(), s.ppid)
	})
	for name, line := range map[string]string{
		"empty":           "",
		"no command":      "12 S 1 2 3",
		"short":           "12 (x) S 1 2 3 4 5",
		"bad pid":         "x1 (x) S 1 0 0 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0",
		"bad utime":       "12 (x) S 1 0 0 0 -1 0 0 0 0 0 u 2 3 4 20 0 1 0",
		"bad ppid":        "12 (x) S p 0 0 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0",
		"bad cstime (17)": "12 (x) S 1 0 0 0 -1 0 0 0 0 0 1 2 3 - 20 0 1 0",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := parseProcStat([]byte(line))
			assert.Error(t, err)
		})
	}
}

func TestClusterTicks(t *testing.T) {
	t.Parallel()
	procs := []procStat{
		{pid: 1, ppid: 0, utime: 1000, stime: 1000, cutime: 9000, cstime: 9000}, // init: not the cluster's
		{pid: 100, ppid: 1, utime: 10, stime: 20, cutime: 300, cstime: 400},     // the postmaster, with exited backends
		{pid: 101, ppid: 100, utime: 1, stime: 2},                               // checkpointer
		{pid: 102, ppid: 100, utime: 50, stime: 60, cutime: 7, cstime: 8},       // a backend that ran a child
		{pid: 200, ppid: 1, utime: 5000, stime: 5000},                           // another cluster's postmaster
		{pid: 201, ppid: 200, utime: 5000, stime: 5000},                         // and its backend
		{pid: 300, ppid: 102, utime: 70, stime: 80},                             // a live grandchild: not counted
	}
	assert.EqualValues(t, 10+20+300+400+1+2+50+60+7+8, clusterTicks(100, procs))
	assert.Zero(t, clusterTicks(999, procs), "no such postmaster")
	assert.Zero(t, clusterTicks(100, nil))
}
