package pgtest

import (
	"context"

	"github.com/streamer-dev/streamer/internal/pgcluster"
)

// startLocal starts a throwaway cluster with this machine's PostgreSQL
// binaries. It returns a *pgcluster.UnavailableError when there are none,
// or when running as root without a postgres OS user to run them as.
func startLocal(ctx context.Context) (backend, error) {
	c, err := pgcluster.Start(ctx)
	if err != nil {
		return backend{}, err
	}
	return backend{name: c.Name(), connString: c.ConnString(), stop: c.Stop}, nil
}
