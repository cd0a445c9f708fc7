package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCPUByRole(t *testing.T) {
	t.Parallel()
	a := backendCPU{
		1: {role: "streamer", cpu: 1.0},
		2: {role: "streamer", cpu: 2.0},
		3: {role: "streamer-sequencer", cpu: 5.0},
		4: {role: "gone", cpu: 9.0},
		6: {role: "walwriter", cpu: 1.0},
	}
	z := backendCPU{
		1: {role: "streamer", cpu: 1.5},
		2: {role: "streamer", cpu: 2.25},
		3: {role: "streamer-sequencer", cpu: 6.0},
		5: {role: "new", cpu: 3.0},             // not in a: left out
		6: {role: "autovacuum worker", cpu: 4}, // pid reused by another role: left out
	}
	require.Equal(t, map[string]float64{"streamer": 0.75, "streamer-sequencer": 1.0}, cpuByRole(a, z))
	require.Nil(t, cpuByRole(nil, z))
}

func TestFormatByRole(t *testing.T) {
	t.Parallel()
	require.Equal(t, "streamer-sequencer 96.5, streamer-bench 88.0, walwriter 0.1",
		formatByRole(map[string]float64{"walwriter": 0.1, "streamer-bench": 88, "streamer-sequencer": 96.5}))
	require.Equal(t, "", formatByRole(nil))
}
