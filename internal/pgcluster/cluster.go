package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamer-dev/streamer/internal/childproc"
)

const (
	// readyTimeout bounds a cluster's start-up.
	readyTimeout = time.Minute
	// stopTimeout bounds the shutdown after a failed start-up.
	stopTimeout = 30 * time.Second
	// port names the socket file; nothing listens on TCP.
	port = "5432"
	// socketFile is the longest name PostgreSQL creates in the socket
	// directory; a unix socket path may have at most 107 bytes.
	socketFile = "/.s.PGSQL." + port + ".lock"
)

// ServerArgs are the postgres command-line settings of a throwaway cluster:
// fast and unsafe, since nothing needs the data to survive a crash. A
// container meant to behave the same may take them, with listen_addresses
// overridden.
var ServerArgs = []string{
	"-c", "listen_addresses=",
	"-c", "port=" + port,
	"-c", "fsync=off",
	"-c", "synchronous_commit=off",
	"-c", "full_page_writes=off",
	"-c", "max_connections=300",
	"-c", "shared_buffers=128MB",
	// Dynamic shared memory in files under the data directory (already on
	// tmpfs when it can be) instead of POSIX segments in /dev/shm, which a
	// killed postmaster (a test that kills it, a test binary that dies)
	// leaves behind there until reboot: they go with the directory.
	"-c", "dynamic_shared_memory_type=mmap",
}

// Cluster is a running throwaway PostgreSQL cluster, a child process of
// this one.
type Cluster struct {
	name string
	dir  string // holds data/, run/ (the socket), postgres.log and owner.pid
	proc *childproc.Process

	stopOnce sync.Once
	stopErr  error
}

// Start initialises and starts a throwaway cluster with this machine's
// PostgreSQL binaries. Each of settings is a postgresql.conf line
// ("name = value") written before the server starts, for settings that need
// a restart, such as shared_preload_libraries. It returns an
// [*UnavailableError] when there are no binaries, or when running as root
// without a postgres OS user to run them as.
func Start(ctx context.Context, settings ...string) (*Cluster, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeClusterDir(cred)
	if err != nil {
		return nil, err
	}

	c := &Cluster{dir: dir, name: "throwaway PostgreSQL (" + binDir + ") in " + dir}
	fail := func(err error) (*Cluster, error) {
		return nil, fmt.Errorf("%s: %w", c.name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := c.initdb(ctx, binDir, cred); err != nil {
		return fail(err)
	}
	if err := appendSettings(filepath.Join(c.dataDir(), "postgresql.conf"), settings); err != nil {
		return fail(err)
	}
	if err := c.start(binDir, cred); err != nil {
		return fail(err)
	}
	if err := c.waitReady(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		return nil, fmt.Errorf("%s: %w", c.name, errors.Join(err, c.Stop(stopCtx)))
	}
	return c, nil
}

// Name says which binaries run the cluster and where, for messages.
func (c *Cluster) Name() string { return c.name }

// ConnString reaches the maintenance database "postgres" as the superuser
// postgres, over the unix socket.
func (c *Cluster) ConnString() string {
	return "postgres://postgres@/postgres?host=" + url.QueryEscape(c.socketDir()) + "&port=" + port
}

func (c *Cluster) dataDir() string   { return filepath.Join(c.dir, "data") }
func (c *Cluster) socketDir() string { return filepath.Join(c.dir, "run") }
func (c *Cluster) logPath() string   { return filepath.Join(c.dir, "postgres.log") }

func (c *Cluster) initdb(ctx context.Context, binDir string, cred *syscall.Credential) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", c.dataDir(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}

	// Pdeathsig fires when the forking OS thread exits, so keep this
	// goroutine on one thread, which lives on, until initdb is done.
	runtime.LockOSThread()
	out, err := cmd.CombinedOutput()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// start starts postgres with a parent-death signal from an OS thread that
// lives as long as postgres (internal/childproc): postgres is killed if this
// process dies, and not before; and its exit ends no thread, which would
// kill any other child forked from that thread.
func (c *Cluster) start(binDir string, cred *syscall.Credential) error {
	if err := os.Mkdir(c.socketDir(), 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(c.socketDir(), int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // postgres has its own descriptor

	args := append([]string{"-D", c.dataDir(), "-k", c.socketDir()}, ServerArgs...)
	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Setpgid:    true, // out of the terminal's way: a ^C ends this process, and the parent-death signal postgres
	}

	proc, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.proc = proc
	return nil
}

// waitReady connects until a connection succeeds, postgres exits, or the
// start-up time is up.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		connCtx, cancelConn := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(connCtx, c.ConnString())
		cancelConn()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.proc.Done():
			return fmt.Errorf("postgres exited during start-up (%v); log:\n%s", c.proc.Err(), c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %v: %w; log:\n%s", readyTimeout, err, c.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop shuts postgres down fast (SIGINT: roll back and disconnect
// everyone), killing it if ctx ends first, and removes the cluster's
// directory. Later calls return the first one's result. It reports an error
// too when postgres had exited before it was asked to.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	var err error
	select {
	case <-c.proc.Done():
		err = fmt.Errorf("postgres exited before it was stopped (%v); log:\n%s", c.proc.Err(), c.logTail())
	default:
		_ = syscall.Kill(c.proc.Pid, syscall.SIGINT)
		select {
		case <-c.proc.Done():
		case <-ctx.Done():
			_ = syscall.Kill(c.proc.Pid, syscall.SIGKILL)
			<-c.proc.Done()
			err = errors.New("postgres did not shut down in time and was killed")
		}
	}
	return errors.Join(err, releaseInterlock(c.dataDir()), os.RemoveAll(c.dir))
}

// logTail returns the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	f, err := os.Open(c.logPath())
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
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
	_, err = f.WriteString("\n# pgcluster.Start\n" + strings.Join(settings, "\n") + "\n")
	return errors.Join(err, f.Close())
}

// serverEnv is this process's environment without libpq's PG* variables,
// which initdb and postgres would otherwise obey (PGPORT, PGDATA, ...).
func serverEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG")
	})
}
