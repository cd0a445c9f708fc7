package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/childproc"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	readyTimeout = 20 * time.Second // process start until /readyz is 200
	stopTimeout  = 15 * time.Second // SIGTERM until exit
)

// buildServer builds ./cmd/streamer into dir, with the race detector when
// this test binary has it, and returns the binary's path.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "streamer")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/streamer-dev/streamer/cmd/streamer")
	began := time.Now()
	out, err := exec.Command(goTool(), args...).CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	t.Logf("built the server in %v (race=%v)", time.Since(began).Round(time.Millisecond), raceEnabled)
	return bin
}

// goTool returns the go command of the toolchain running the tests.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freeAddr returns a loopback address with a port that is free now. A
// server restarted on it keeps the URL that EventSource reconnects to. The
// port is below the kernel's ephemeral range, so that while the server is
// down no outgoing connection takes it as its local port.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low > 11000 {
		for range 100 {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(low-10000)))
			if ln, err := net.Listen("tcp", addr); err == nil {
				require.NoError(t, ln.Close())
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// deployment is one database with one server process on a fixed address,
// which a test may stop and start again.
type deployment struct {
	t     *testing.T
	bin   string
	addr  string
	url   string // http://addr
	dbURL string
	pool  *pgxpool.Pool // for publishing with SQL
	env   []string
	logs  *logBuffer
	// logShown: a failure message already holds the log's tail.
	logShown bool

	proc *process // nil while stopped
}

// process is one run of the server binary, started by childproc: its
// parent-death signal fires when the test binary dies, and only then.
type process = childproc.Process

// deployOption changes the server's environment.
type deployOption func(env map[string]string)

func withEnv(key, value string) deployOption {
	return func(env map[string]string) { env[key] = value }
}

// deploy creates a database and starts a server on it.
func deploy(t *testing.T, bin string, opts ...deployOption) *deployment {
	t.Helper()
	dbURL := pgtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // before the database is dropped
	return deployOnDB(t, bin, dbURL, pool, opts...)
}

// deployOnDB starts one server on an existing database, with deploy's
// environment.
func deployOnDB(t *testing.T, bin, dbURL string, pool *pgxpool.Pool, opts ...deployOption) *deployment {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":                     dbURL,
		"STREAMER_RETRY":                   "200ms", // browsers reconnect fast
		"STREAMER_SHUTDOWN_TIMEOUT":        "5s",
		"STREAMER_LOG_FORMAT":              "console",
		"STREAMER_LOG_LEVEL":               "info",
		"STREAMER_ALLOW_ANONYMOUS_PUBLISH": "true",
		"STREAMER_UI":                      "true",
	}
	for _, o := range opts {
		o(env)
	}
	d := &deployment{t: t, bin: bin, addr: freeAddr(t), dbURL: dbURL, pool: pool, logs: &logBuffer{}}
	env["STREAMER_ADDR"] = d.addr
	d.url = "http://" + d.addr
	// The parent's environment, less anything that configures streamer.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STREAMER_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			d.env = append(d.env, kv)
		}
	}
	for k, v := range env {
		d.env = append(d.env, k+"="+v)
	}
	t.Cleanup(func() {
		// The log first: stop may fail the test (a server that already
		// exited), and then it would never be shown. Its tail only, and
		// last: CI reports cut long output in the middle.
		defer func() {
			if t.Failed() && !d.logShown {
				t.Logf("server %s log, %s", d.addr, d.logTail())
			}
		}()
		if d.proc != nil {
			d.stop()
		}
	})
	d.start()
	return d
}

// start runs the server and waits until /readyz answers 200.
func (d *deployment) start() {
	t := d.t
	t.Helper()
	require.Nil(t, d.proc, "server already running")
	cmd := exec.Command(d.bin, "serve")
	cmd.Env = d.env
	cmd.Stdout = d.logs
	cmd.Stderr = d.logs
	p, err := childproc.Start(cmd)
	require.NoError(t, err)
	d.proc = p

	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(d.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.Done():
			d.proc = nil
			t.Fatalf("server exited before it was ready: %s", d.exitReport(p))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after %v (last error %v); log, %s", readyTimeout, err, d.logTail())
		}
	}
}

// stop sends SIGTERM and requires a clean exit within stopTimeout.
func (d *deployment) stop() {
	t := d.t
	t.Helper()
	require.NotNil(t, d.proc, "server not running")
	d.requireRunning()
	p := d.proc
	d.proc = nil
	_ = syscall.Kill(p.Pid, syscall.SIGTERM) // if it has just exited, its exit status says how
	select {
	case <-p.Done():
	case <-time.After(stopTimeout):
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		<-p.Done()
		t.Fatalf("server did not stop within %v of SIGTERM", stopTimeout)
	}
	if p.Err() != nil {
		t.Fatalf("server stopped with an error: %s", d.exitReport(p))
	}
}

// requireRunning fails the test at once when the server process has exited
// although nobody stopped it, saying how. It does nothing while no server
// runs.
func (d *deployment) requireRunning() {
	d.t.Helper()
	p := d.proc
	if p == nil {
		return
	}
	select {
	case <-p.Done():
		d.proc = nil // nothing left to stop
		d.t.Fatalf("server exited unexpectedly: %s", d.exitReport(p))
	default:
	}
}

// exitReport describes how the exited server p ended: its log's tail and
// every race report and panic in full, then the exit status, last.
func (d *deployment) exitReport(p *process) string {
	return fmt.Sprintf("log, %s\nserver %s (pid %d) exited: %v", d.logTail(), d.addr, p.Pid, p.Err())
}

// logTail returns logReport of the server's log so far, for a failure
// message, and notes that it was shown.
func (d *deployment) logTail() string {
	d.logShown = true
	return logReport(d.logs.String(), logTailLines)
}

// publish inserts one event with SQL in its own transaction and returns its
// id. An empty event is NULL: an untyped event.
func (d *deployment) publish(t testing.TB, stream, event, data string) int64 {
	t.Helper()
	var typ *string
	if event != "" {
		typ = &event
	}
	var id int64
	require.NoError(t, d.pool.QueryRow(context.Background(),
		"SELECT streamer.publish($1, $2, event => $3)", stream, data, typ).Scan(&id))
	return id
}

// head returns streamer.head(): a token meaning "everything committed so far".
func (d *deployment) head(t testing.TB) string {
	t.Helper()
	var token string
	require.NoError(t, d.pool.QueryRow(context.Background(), "SELECT streamer.head()").Scan(&token))
	return token
}

// logBuffer collects a process's output for the failure report.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepPublishing publishes "<prefix><i>" for i = 0, 1, ... on stream, one
// event per transaction, every interval until stop is called; stop returns
// the data published, in commit order. A failed insert fails the test.
func (d *deployment) keepPublishing(t *testing.T, stream, prefix string, interval time.Duration) (published func() int, stop func() []string) {
	t.Helper()
	var (
		mu   sync.Mutex
		sent []string
		err  error
		quit = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			data := fmt.Sprintf("%s%d", prefix, i)
			// Not cancelled by stop: an insert cut short could still commit
			// and then be missing from the list.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, e := d.pool.Exec(ctx, "SELECT streamer.publish($1, $2)", stream, data)
			cancel()
			mu.Lock()
			if e != nil {
				err = e
			} else {
				sent = append(sent, data)
			}
			mu.Unlock()
			if e != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	published = func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}
	var once sync.Once
	stop = func() []string {
		once.Do(func() {
			close(quit)
			<-done
		})
		mu.Lock()
		defer mu.Unlock()
		require.NoError(t, err, "publishing")
		return append([]string(nil), sent...)
	}
	t.Cleanup(func() { stop() })
	return published, stop
}
