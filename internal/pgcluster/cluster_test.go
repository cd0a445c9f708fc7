package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/streamer-dev/streamer/internal/testenv"
)

// testTimeout bounds each test's cluster work.
const testTimeout = 2 * time.Minute

// start starts a cluster for t, or skips t (fails it under CI=true) when
// this machine has no PostgreSQL binaries.
func start(t *testing.T, settings ...string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Start(ctx, settings...)
	var unavailable *UnavailableError
	if errors.As(err, &unavailable) {
		testenv.Unavailable(t, "no throwaway cluster on this machine: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func TestStart(t *testing.T) {
	t.Parallel()
	c := start(t, "work_mem = '7MB'", "application_name = 'pgcluster_test'")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	conn, err := pgx.Connect(ctx, c.ConnString())
	require.NoError(t, err)
	var workMem, fsync, listen string
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT current_setting('work_mem'), current_setting('fsync'), current_setting('listen_addresses')",
	).Scan(&workMem, &fsync, &listen))
	require.NoError(t, conn.Close(ctx))
	require.Equal(t, "7MB", workMem, "settings are written before the server starts")
	require.Equal(t, "off", fsync, "ServerArgs apply")
	require.Empty(t, listen, "no TCP port")

	owner, err := os.ReadFile(filepath.Join(c.dir, ownerFile))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid()), string(owner))

	require.NoError(t, c.Stop(ctx))
	require.NoDirExists(t, c.dir, "Stop removes the directory")
	require.NoError(t, c.Stop(ctx), "a second Stop returns the first one's result")
	_, err = pgx.Connect(ctx, c.ConnString())
	require.Error(t, err, "the server is gone")
}

func TestStopReportsAnEarlyExit(t *testing.T) {
	t.Parallel()
	c := start(t)
	// What PostgreSQL would leave in /dev/shm after a kill is in the
	// cluster's directory instead.
	segments, err := os.ReadDir(filepath.Join(c.dataDir(), "pg_dynshmem"))
	require.NoError(t, err)
	require.NotEmpty(t, segments, "dynamic shared memory is under the data directory")
	require.NoError(t, syscall.Kill(c.proc.Pid, syscall.SIGKILL))
	<-c.proc.Done()
	interlock := interlockID(t, c.dataDir())

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err = c.Stop(ctx)
	require.ErrorContains(t, err, "postgres exited before it was stopped")
	require.NoDirExists(t, c.dir, "the directory is removed all the same")
	// Removed, once the backends that follow their postmaster have gone.
	require.Eventually(t, func() bool {
		_, err := unix.SysvShmCtl(interlock, unix.IPC_STAT, &unix.SysvShmDesc{})
		return errors.Is(err, unix.EINVAL)
	}, 30*time.Second, 10*time.Millisecond, "the killed postmaster's System V segment is left behind")
}

// interlockID returns the id of the System V shared memory segment that
// the postmaster of dataDir names in postmaster.pid.
func interlockID(t *testing.T, dataDir string) int {
	t.Helper()
	_, id, ok, err := interlock(dataDir)
	require.NoError(t, err)
	require.True(t, ok, "postmaster.pid names a segment")
	var desc unix.SysvShmDesc
	_, err = unix.SysvShmCtl(id, unix.IPC_STAT, &desc)
	require.NoError(t, err, "the segment postmaster.pid names exists")
	return id
}

func TestRemoveAbandoned(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()

	// A process that has exited: its pid is free until reused, which
	// within this test it is not likely to be.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	mk := func(name string, owner string) string {
		dir := filepath.Join(parent, name)
		require.NoError(t, os.Mkdir(dir, 0o700))
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644))
		}
		return dir
	}
	abandoned := mk(dirPrefix+"dead", strconv.Itoa(dead.ProcessState.Pid()))
	// Its postmaster was killed too, and left its System V segment (here
	// one of the test's own) named in postmaster.pid.
	segment, err := unix.SysvShmGet(unix.IPC_PRIVATE, 64, unix.IPC_CREAT|0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(segment, unix.IPC_RMID, nil) })
	require.NoError(t, os.Mkdir(filepath.Join(abandoned, "data"), 0o700))
	pidFile := fmt.Sprintf("1\n%s\n0\n5432\n/run\n\n%9d %9d\nready\n", abandoned, 0, segment)
	require.NoError(t, os.WriteFile(filepath.Join(abandoned, "data", "postmaster.pid"), []byte(pidFile), 0o600))
	alive := mk(dirPrefix+"alive", strconv.Itoa(os.Getpid()))
	ownerless := mk(dirPrefix+"ownerless", "")
	other := mk("other", strconv.Itoa(dead.ProcessState.Pid()))

	removeAbandoned(parent)
	require.NoDirExists(t, abandoned)
	_, err = unix.SysvShmCtl(segment, unix.IPC_STAT, &unix.SysvShmDesc{})
	require.ErrorIs(t, err, unix.EINVAL, "the abandoned cluster's System V segment is removed")
	require.DirExists(t, alive)
	require.DirExists(t, ownerless)
	require.DirExists(t, other, "only cluster directories are touched")
}

func TestUsableParent(t *testing.T) {
	t.Parallel()
	require.True(t, usableParent(t.TempDir(), 0, nil))
	long := "/tmp/" + strings.Repeat("x", 80)
	require.False(t, usableParent(long, 0, nil), "a socket path over 107 bytes")
	require.False(t, usableParent(filepath.Join(t.TempDir(), "missing"), 0, nil))
}

func TestOthersCanTraverse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// /tmp's sticky bit does not make it unsearchable.
	require.True(t, othersCanTraverse("/tmp"))
	require.NoError(t, os.Chmod(dir, 0o700))
	require.False(t, othersCanTraverse(dir))
	require.NoError(t, os.Chmod(dir, 0o701))
	require.Equal(t, othersCanTraverse(filepath.Dir(dir)), othersCanTraverse(dir))
}

// threads returns this process's OS thread ids.
func threads(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// Postgres exiting ends no OS thread of this process: a thread that ends
// SIGKILLs every child forked from it with a parent-death signal, such as
// a server the caller started before (the e2e fault tests' servers died
// that way when the postmaster was taken down).
func TestStopEndsNoThread(t *testing.T) { // not parallel: another test's threads are not this one's
	c := start(t)
	before := threads(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, c.Stop(ctx))
	// A locked goroutine's thread ends microseconds after it returns.
	require.Never(t, func() bool {
		after := threads(t)
		for _, tid := range before {
			if !slices.Contains(after, tid) {
				t.Logf("thread %s ended", tid)
				return true
			}
		}
		return false
	}, time.Second, time.Millisecond, "a thread ended with postgres")
}
