package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoTestOnlyDependencies keeps test code out of the tool's binary: it
// starts its PostgreSQL with internal/pgcluster, never internal/pgtest,
// which links testing, testify and testcontainers.
func TestNoTestOnlyDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/streamer-dev/streamer/cmd/streamer-bench").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/streamer-dev/streamer/internal/pgcluster")
	for _, dep := range deps {
		testOnly := dep == "testing" || strings.HasPrefix(dep, "testing/") ||
			strings.Contains(dep, "testify") || strings.Contains(dep, "testcontainers") ||
			dep == "github.com/streamer-dev/streamer/internal/pgtest"
		require.False(t, testOnly, "cmd/streamer-bench links %s", dep)
	}
}
