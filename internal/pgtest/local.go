package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// readyTimeout bounds a throwaway cluster's start-up.
	readyTimeout = time.Minute
	// localPort names the socket file; nothing listens on TCP.
	localPort = "5432"
	// socketFile is the longest name PostgreSQL creates in the socket
	// directory; a unix socket path may have at most 107 bytes.
	socketFile = "/.s.PGSQL." + localPort + ".lock"
	// ownerFile holds the test binary's pid, in the cluster's directory.
	ownerFile = "owner.pid"
)

// localServerArgs make a cluster fast and unsafe: tests never need the data
// to survive a crash.
var localServerArgs = []string{
	"-c", "listen_addresses=",
	"-c", "port=" + localPort,
	"-c", "fsync=off",
	"-c", "synchronous_commit=off",
	"-c", "full_page_writes=off",
	"-c", "max_connections=300",
	"-c", "shared_buffers=128MB",
}

// localCluster is a throwaway PostgreSQL cluster in a temporary directory,
// run as a child process of the test binary.
type localCluster struct {
	dir     string // holds data/, run/ (the socket), postgres.log and owner.pid
	proc    *os.Process
	exited  chan struct{} // closed once postgres has exited
	waitErr error         // postgres's exit status; read after exited is closed
}

// startLocal initialises and starts a throwaway cluster with this machine's
// PostgreSQL binaries. It returns an *unavailableError when there are none,
// or when running as root without a postgres OS user to run them as.
func startLocal(ctx context.Context) (backend, error) {
	binDir, err := findBinDir()
	if err != nil {
		return backend{}, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return backend{}, err
	}
	dir, err := makeClusterDir(cred)
	if err != nil {
		return backend{}, err
	}

	c := &localCluster{dir: dir}
	name := "throwaway PostgreSQL (" + binDir + ") in " + dir
	if err := c.initdb(ctx, binDir, cred); err != nil {
		return backend{}, fmt.Errorf("%s: %w", name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := c.start(binDir, cred); err != nil {
		return backend{}, fmt.Errorf("%s: %w", name, errors.Join(err, os.RemoveAll(dir)))
	}
	if err := c.waitReady(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		return backend{}, fmt.Errorf("%s: %w", name, errors.Join(err, c.stop(stopCtx)))
	}
	return backend{name: name, connString: c.connString(), stop: c.stop}, nil
}

func (c *localCluster) dataDir() string   { return filepath.Join(c.dir, "data") }
func (c *localCluster) socketDir() string { return filepath.Join(c.dir, "run") }
func (c *localCluster) logPath() string   { return filepath.Join(c.dir, "postgres.log") }

func (c *localCluster) connString() string {
	return "postgres://postgres@/postgres?host=" + url.QueryEscape(c.socketDir()) + "&port=" + localPort
}

func (c *localCluster) initdb(ctx context.Context, binDir string, cred *syscall.Credential) error {
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

// start starts postgres from a goroutine that stays locked to its OS thread
// until postgres exits: the parent-death signal is tied to the thread that
// forked, so postgres is killed if the test binary dies, and not before.
func (c *localCluster) start(binDir string, cred *syscall.Credential) error {
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

	args := append([]string{"-D", c.dataDir(), "-k", c.socketDir()}, localServerArgs...)
	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Pdeathsig:  syscall.SIGKILL,
		Setpgid:    true, // out of the terminal's way: a ^C ends the binary, and Pdeathsig postgres
	}

	c.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		defer close(c.exited)
		// Never unlocked: the thread exits with this goroutine, after postgres.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.proc = cmd.Process
	return nil
}

// waitReady connects until a connection succeeds, postgres exits, or the
// start-up time is up.
func (c *localCluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		connCtx, cancelConn := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(connCtx, c.connString())
		cancelConn()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up (%v); log:\n%s", c.waitErr, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %v: %w; log:\n%s", readyTimeout, err, c.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop shuts postgres down fast (SIGINT: roll back and disconnect
// everyone) and removes the cluster's directory.
func (c *localCluster) stop(ctx context.Context) error {
	var err error
	select {
	case <-c.exited:
		err = fmt.Errorf("postgres exited before the tests were done (%v); log:\n%s", c.waitErr, c.logTail())
	default:
		_ = c.proc.Signal(os.Interrupt)
		select {
		case <-c.exited:
		case <-ctx.Done():
			_ = c.proc.Kill()
			<-c.exited
			err = errors.New("postgres did not shut down in time and was killed")
		}
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// logTail returns the end of the server log, for error messages.
func (c *localCluster) logTail() string {
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

// findBinDir returns a directory holding both postgres and initdb: the
// highest version under /usr/lib/postgresql (Debian's layout), else
// pg_config --bindir, else the one on PATH.
func findBinDir() (string, error) {
	var best string
	var bestVersion []int
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	for _, m := range matches {
		dir := filepath.Dir(m)
		v := parseVersion(filepath.Base(filepath.Dir(dir)))
		if hasServer(dir) && (best == "" || slices.Compare(v, bestVersion) > 0) {
			best, bestVersion = dir, v
		}
	}
	if best != "" {
		return best, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil && hasServer(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", &unavailableError{reasons: []string{
		"no PostgreSQL server binaries in /usr/lib/postgresql/*/bin, pg_config --bindir or PATH" +
			" (run scripts/ensure-deps.sh, or apt-get install postgresql)",
	}}
}

func hasServer(dir string) bool {
	for _, name := range []string{"postgres", "initdb"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// parseVersion turns "15" or "9.6" into comparable numbers.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// postgresCredential returns the identity to run the server as: nil (this
// process's) unless running as root, which initdb and postgres refuse.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, &unavailableError{reasons: []string{
			"running as root, and there is no postgres OS user to run PostgreSQL as: " + err.Error(),
		}}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// clusterParents are where a cluster's directory may go, best first. tmpfs
// comes first: CREATE DATABASE writes some 300 files, which takes a few
// hundred milliseconds on a busy disk and a few tens on tmpfs.
var clusterParents = []struct {
	dir     string
	minFree uint64 // bytes; Docker's default 64 MB /dev/shm is too small
}{
	{"/dev/shm", 2 << 30},
	{os.TempDir(), 256 << 20},
	{"/tmp", 0},
}

// makeClusterDir creates the cluster's directory, owned by the user the
// server runs as, in the first of clusterParents where the socket path fits,
// (as root) the postgres user can reach it, and there is room.
func makeClusterDir(cred *syscall.Credential) (string, error) {
	for _, p := range clusterParents {
		removeAbandoned(p.dir)
	}
	var errs []error
	for _, p := range clusterParents {
		if !usableParent(p.dir, p.minFree, cred) {
			continue
		}
		dir, err := os.MkdirTemp(p.dir, "pgtest-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
		if err == nil && cred != nil {
			err = os.Chown(dir, int(cred.Uid), int(cred.Gid))
		}
		if err != nil {
			return "", errors.Join(err, os.RemoveAll(dir))
		}
		return dir, nil
	}
	return "", fmt.Errorf("no directory for a throwaway cluster: %w", errors.Join(errs...))
}

func usableParent(dir string, minFree uint64, cred *syscall.Credential) bool {
	// MkdirTemp adds up to 10 digits to "pgtest-"; then "/run".
	if len(dir)+len("/pgtest-0123456789/run")+len(socketFile) > 107 {
		return false
	}
	if cred != nil && !othersCanTraverse(dir) {
		return false
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) >= minFree
}

// removeAbandoned removes the cluster directories under parent whose test
// binary died without running Main (killed, or a go test -timeout panic).
// Their postgres died with them (Pdeathsig). A directory whose owner is alive,
// or that has no owner file, is left alone.
func removeAbandoned(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// othersCanTraverse reports whether every directory from / down to dir is
// searchable by users other than its owner and group.
func othersCanTraverse(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// serverEnv is this process's environment without libpq's PG* variables,
// which initdb and postgres would otherwise obey (PGPORT, PGDATA, ...).
func serverEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG")
	})
}
