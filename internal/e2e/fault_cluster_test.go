package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/childproc"
	"github.com/streamer-dev/streamer/internal/pgcluster"
	"github.com/streamer-dev/streamer/internal/testenv"
	"github.com/streamer-dev/streamer/migrations"
)

// cluster is a PostgreSQL cluster of this test's own, which it may stop
// and start: pgtest's shared cluster must outlive every test of the binary.
// The first postmaster is pgtest.StartStandalone's; every later one is
// started here, with the command line PostgreSQL saved in postmaster.opts.
type cluster struct {
	t       *testing.T
	url     string // the migrated "postgres" database
	dataDir string
	args    []string // postmaster.opts: the binary, then its arguments
	cred    *syscall.Credential
	ours    *ownPostmaster // nil while the first postmaster runs or none does
	// firstDown: the test took pgcluster's postmaster down itself.
	firstDown bool
}

// ownPostmaster is a postmaster this test started.
type ownPostmaster = childproc.Process

// newCluster starts a throwaway cluster, migrates its "postgres" database
// and returns it. It needs a local PostgreSQL installation; without one the
// test is skipped (failed under CI=true, as pgtest does).
func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	pc, err := pgcluster.Start(ctx, "max_connections = 200")
	if err != nil {
		testenv.Unavailable(t, "own PostgreSQL cluster: %v", err)
	}
	url := pc.ConnString()
	c := &cluster{t: t, url: url}
	t.Cleanup(func() {
		if c.ours != nil {
			c.down(syscall.SIGINT, time.Minute)
		}
		// Stop reports that the first postmaster exited early, which is
		// what this test did to it; it still removes the directory.
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pc.Stop(stopCtx); err != nil && !(c.firstDown && strings.Contains(err.Error(), "exited before")) {
			t.Errorf("stopping the cluster: %v", err)
		}
	})

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, migrations.Migrate(ctx, conn))
	// The throwaway cluster runs with synchronous_commit=off (pgtest's
	// speed setting, on its command line), which acknowledges a COMMIT
	// before its WAL is written: a postmaster crash would then lose
	// acknowledged events. A database setting outranks the command line;
	// fsync=off is harmless here, since the OS does not crash.
	_, err = conn.Exec(ctx, "ALTER DATABASE postgres SET synchronous_commit = on")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, "SHOW data_directory").Scan(&c.dataDir))
	opts, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.opts"))
	require.NoError(t, err)
	c.args = splitOpts(strings.TrimSpace(string(opts)))
	require.NotEmpty(t, c.args)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return c
}

// splitOpts splits postmaster.opts: the binary's path, then arguments in
// double quotes.
func splitOpts(s string) []string {
	var out []string
	for s != "" {
		s = strings.TrimLeft(s, " ")
		if strings.HasPrefix(s, `"`) {
			end := strings.Index(s[1:], `"`)
			if end < 0 {
				return nil
			}
			out = append(out, s[1:1+end])
			s = s[2+end:]
			continue
		}
		word, rest, _ := strings.Cut(s, " ")
		out = append(out, word)
		s = rest
	}
	return out
}

// pid returns the running postmaster's pid, from postmaster.pid.
func (c *cluster) pid() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	require.NoError(c.t, err)
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	require.NoError(c.t, err)
	return pid
}

// down sends sig to the postmaster and waits until it has exited: SIGINT
// is PostgreSQL's fast shutdown, SIGKILL a crash.
func (c *cluster) down(sig syscall.Signal, timeout time.Duration) {
	c.t.Helper()
	pid := c.pid() // read first: a clean shutdown removes the file
	require.NoError(c.t, syscall.Kill(pid, sig))
	c.firstDown = true
	if c.ours != nil {
		select {
		case <-c.ours.Done():
			c.ours = nil
			return
		case <-time.After(timeout):
			c.t.Fatalf("postmaster did not exit within %v of %v", timeout, sig)
		}
	}
	waitFor(c.t, timeout, "the postmaster to exit", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}

// start starts a postmaster with the saved command line, retrying while the
// previous one's backends still hold its shared memory (after a SIGKILL
// they exit when they notice), and waits until it accepts connections.
func (c *cluster) start() {
	t := c.t
	t.Helper()
	require.Nil(t, c.ours, "a postmaster is running")
	deadline := time.Now().Add(longWait)
	for {
		p, err := c.startOnce()
		require.NoError(t, err)
		ready := c.waitReady(p)
		if ready {
			c.ours = p
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postmaster did not start within %v; log in %s", longWait, filepath.Dir(c.dataDir))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startOnce runs the postmaster with a parent-death signal, from a thread
// that lives as long as it (see internal/childproc).
func (c *cluster) startOnce() (*ownPostmaster, error) {
	logFile, err := os.OpenFile(filepath.Join(filepath.Dir(c.dataDir), "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return childproc.Start(cmd)
}

// waitReady reports whether p accepts connections before it exits.
func (c *cluster) waitReady(p *ownPostmaster) bool {
	deadline := time.Now().Add(longWait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url)
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return true
		}
		select {
		case <-p.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// deployOn starts a server on the cluster's database (deploy's own test
// database is left unused) and points the deployment's pool at the cluster.
func deployOn(t *testing.T, bin string, c *cluster, opts ...deployOption) *deployment {
	t.Helper()
	d := deploy(t, bin, append(opts, withEnv("DATABASE_URL", c.url))...)
	pool, err := pgxpool.New(context.Background(), c.url)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // after the server stops, before the cluster does
	d.pool, d.dbURL = pool, c.url
	return d
}
