package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// StartStandalone starts a throwaway PostgreSQL cluster for a program that
// is not a test (the load tool, cmd/streamer-bench): the same cluster the
// tests get when neither Docker nor DATABASE_URL is available (unix socket
// only, fsync off, on /dev/shm when it has room; see the package
// documentation), with no template and no migrations. Each of settings is a
// postgresql.conf line ("name = value") written before the server starts,
// for settings that need a restart, such as shared_preload_libraries.
//
// It returns the connection string of the maintenance database "postgres",
// and stop, which shuts the cluster down and removes its directory (safe to
// call more than once). The cluster dies with the calling process even if
// stop is never called; its directory is then removed by the next process
// that starts a cluster.
func StartStandalone(ctx context.Context, settings ...string) (connString string, stop func() error, err error) {
	binDir, err := findBinDir()
	if err != nil {
		return "", nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return "", nil, err
	}
	dir, err := makeClusterDir(cred)
	if err != nil {
		return "", nil, err
	}
	c := &localCluster{dir: dir}
	name := "throwaway PostgreSQL (" + binDir + ") in " + dir
	if err := c.initdb(ctx, binDir, cred); err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := appendSettings(filepath.Join(c.dataDir(), "postgresql.conf"), settings); err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := c.start(binDir, cred); err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := c.waitReady(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		return "", nil, fmt.Errorf("%s: %w", name, errors.Join(err, c.stop(stopCtx)))
	}

	stop = sync.OnceValue(func() error {
		stopCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		return c.stop(stopCtx)
	})
	return c.connString(), stop, nil
}

// appendSettings appends lines to a postgresql.conf; the later of two
// settings of one name wins.
func appendSettings(path string, settings []string) error {
	if len(settings) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n# StartStandalone\n" + strings.Join(settings, "\n") + "\n")
	return errors.Join(err, f.Close())
}
