package pgtest

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/pgcluster"
)

const (
	// containerImage is the server a Docker engine runs for the tests.
	containerImage = "postgres:15-alpine"
	// dockerProbeTimeout bounds asking a Docker engine whether it is up.
	dockerProbeTimeout = time.Second
)

// dockerReachable reports whether a Docker engine answers, and if not, why.
// With no engine it returns at once (no socket) or within the probe timeout.
func dockerReachable() (ok bool, reason string) {
	defer func() {
		// testcontainers panics on some broken configurations.
		if r := recover(); r != nil {
			ok, reason = false, fmt.Sprintf("no Docker engine: probe panicked: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return false, "no Docker engine: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	if err := provider.Health(ctx); err != nil { // Health also closes the provider
		return false, "no Docker engine: " + err.Error()
	}
	return true, ""
}

// startContainer runs a PostgreSQL container configured like the throwaway
// local cluster (see pgcluster.ServerArgs).
func startContainer(ctx context.Context) (backend, error) {
	cmd := append([]string{"postgres"}, pgcluster.ServerArgs...)
	// The image must listen on TCP inside the container.
	cmd = append(cmd, "-c", "listen_addresses=*")

	ctr, err := tcpostgres.Run(ctx, containerImage,
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmd(cmd...),
	)
	stop := func(context.Context) error {
		return testcontainers.TerminateContainer(ctr)
	}
	if err != nil {
		return backend{}, fmt.Errorf("start %s container: %w (stop: %v)", containerImage, err, stop(ctx))
	}
	connString, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return backend{}, fmt.Errorf("%s container's address: %w (stop: %v)", containerImage, err, stop(ctx))
	}
	return backend{
		name:       containerImage + " container",
		connString: connString,
		stop:       stop,
		leakIgnores: []goleak.Option{
			// The Ryuk reaper's connection lives until the binary exits, so
			// that Ryuk removes the container if the binary dies.
			goleak.IgnoreAnyFunction("github.com/testcontainers/testcontainers-go.(*Reaper).connect.func1"),
			// Keep-alive connections of the Docker API clients.
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		},
	}, nil
}
