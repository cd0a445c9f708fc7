package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
	"github.com/streamer-dev/streamer/internal/childproc"
)

// The processes the coordinator starts: the server under test (streamer or
// the baseline) and the client workers. Every one gets SIGKILL when the
// coordinator dies (Pdeathsig), so a killed run leaves nothing behind.

// roleEnv makes this binary (or the test binary) run as a helper process
// instead of the coordinator: "client" or "baseline-server".
const roleEnv = "STREAMER_BENCH_ROLE"

// child is a started process.
type child struct {
	name   string
	cmd    *exec.Cmd
	pid    int
	exited <-chan struct{} // closed once the process has been waited for
	proc   *childproc.Process
	log    string // file with its stderr, if any
}

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	// From a thread of its own: the parent-death signal is tied to the
	// forking thread, which must not end before the child does.
	p, err := childproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &child{name: name, cmd: cmd, pid: p.Pid, exited: p.Done(), proc: p}, nil
}

// stop sends SIGTERM and waits up to grace, then kills.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %v after SIGTERM and was killed", c.name, grace)
	}
}

func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	if c.log == "" {
		return ""
	}
	b, err := os.ReadFile(c.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// target is a running server under test.
type target struct {
	*child
	kind      string // "streamer" or "baseline"
	addr      string // host:port of the SSE endpoint
	pprofAddr string // when profiling
	// upstreams, when set, are the servers behind this target, a proxy
	// (nginx.go): their CPU is the server's, the proxy's its own.
	upstreams []*target
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startTarget starts the server of kind and waits until it is ready.
func (b *bench) startTarget(ctx context.Context, kind, label string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t := &target{kind: kind, addr: addr}
	if b.cfg.Profile != "" {
		if t.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(b.tmp, label+"."+kind+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	var cmd *exec.Cmd
	ready := "/healthz"
	switch kind {
	case "streamer":
		cmd = exec.Command(b.serverBin, "serve")
		cmd.Env = append(os.Environ(),
			"DATABASE_URL="+b.dbURL,
			"STREAMER_ADDR="+addr,
			fmt.Sprintf("STREAMER_MAX_CONNECTIONS=%d", b.cfg.MaxConnections),
			fmt.Sprintf("STREAMER_DB_MAX_CONNS=%d", b.cfg.DBMaxConns),
			"STREAMER_LOG_LEVEL=info",
			// Authorization on, as in production; every scenario's
			// stream but the auth ones' is public (auth.go).
			"STREAMER_JWT_SECRET="+string(b.jwtSecret),
			"STREAMER_PUBLIC_STREAMS="+publicStreams,
		)
		cmd.Env = append(cmd.Env, scenarioEnv(label)...)
		if t.pprofAddr != "" {
			cmd.Env = append(cmd.Env, pprofEnv+"="+t.pprofAddr)
		}
		ready = "/readyz"
	case "baseline":
		args := []string{"-addr", addr}
		if t.pprofAddr != "" {
			args = append(args, "-pprof", t.pprofAddr)
		}
		cmd = b.selfCommand("baseline-server", args...)
	case "floor":
		args := []string{"-addr", addr}
		if t.pprofAddr != "" {
			args = append(args, "-pprof", t.pprofAddr)
		}
		cmd = b.selfCommand("floor-server", args...)
	default:
		return nil, fmt.Errorf("unknown target %q", kind)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	t.child, err = startChild(kind+" server", cmd)
	if err != nil {
		return nil, err
	}
	t.log = logPath
	if err := t.waitReady(ctx, "http://"+addr+ready); err != nil {
		return nil, err
	}
	return t, nil
}

// waitReady waits up to 30s for url to answer 200; when it does not, or t
// exits first, t is stopped and the error says why.
func (t *target) waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-t.exited:
			return fmt.Errorf("%s exited during start-up (%v):\n%s", t.name, t.proc.Err(), t.logTail())
		case <-ctx.Done():
			_ = t.stop(5 * time.Second)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = t.stop(5 * time.Second)
			return fmt.Errorf("%s not ready after 30s:\n%s", t.name, t.logTail())
		}
	}
}

// selfCommand runs this executable in a helper role. The role goes in the
// environment, so that a test binary (whose TestMain checks it) works too.
func (b *bench) selfCommand(role string, args ...string) *exec.Cmd {
	cmd := exec.Command(b.self, args...)
	// Under go test -race the helpers are race-enabled test binaries, which
	// would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	return cmd
}

// workerProc is a client worker process and its request channel.
type workerProc struct {
	*child
	mu  sync.Mutex // one request at a time
	in  io.WriteCloser
	out *bufio.Scanner
}

func (b *bench) startWorker(label string) (*workerProc, error) {
	args := []string{"-buf", fmt.Sprint(b.cfg.ReadBuffer)}
	if b.cfg.Profile != "" {
		b.nworkers++
		args = append(args, "-cpuprofile", filepath.Join(b.cfg.Profile, fmt.Sprintf("%s.client-%d.cpu.pprof", label, b.nworkers)))
	}
	cmd := b.selfCommand("client", args...)
	// The workers share the two cores with the server: collect less often.
	cmd.Env = append(cmd.Env, "GOGC=400")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c, err := startChild("client worker", cmd)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	return &workerProc{child: c, in: in, out: sc}, nil
}

// call sends one request and waits for its response, up to timeout; a
// worker that does not answer in time is killed.
func (w *workerProc) call(req client.Request, timeout time.Duration) (client.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line, err := json.Marshal(req)
	if err != nil {
		return client.Response{}, err
	}
	type result struct {
		resp client.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if _, err := w.in.Write(append(line, '\n')); err != nil {
			r.err = fmt.Errorf("client worker %d: send %s: %w", w.pid, req.Op, err)
		} else if !w.out.Scan() {
			r.err = fmt.Errorf("client worker %d: no response to %s: %v", w.pid, req.Op, errors.Join(w.out.Err(), io.ErrUnexpectedEOF))
		} else if err := json.Unmarshal(w.out.Bytes(), &r.resp); err != nil {
			r.err = fmt.Errorf("client worker %d: response to %s: %w", w.pid, req.Op, err)
		} else if r.resp.Err != "" {
			r.err = fmt.Errorf("client worker %d: %s: %s", w.pid, req.Op, r.resp.Err)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-time.After(timeout):
		_ = w.cmd.Process.Kill()
		return client.Response{}, fmt.Errorf("client worker %d: no response to %s within %v; killed", w.pid, req.Op, timeout)
	}
}

// close asks the worker to close its connections and exit.
func (w *workerProc) close() {
	if w.alive() {
		_, _ = w.call(client.Request{Op: "close"}, 10*time.Second)
		_ = w.in.Close()
	}
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// pprofEnv makes a streamer binary built with the profiling overlay serve
// net/http/pprof on that address.
const pprofEnv = "STREAMER_BENCH_PPROF"

// pprofOverlay is compiled into cmd/streamer, for profiling runs only, with
// go build -overlay: the repository's files are not touched.
const pprofOverlay = `package main

import (
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("` + pprofEnv + `")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { _ = http.ListenAndServe(addr, mux) }()
}
`

// buildServer builds cmd/streamer of the module in src (empty: the current
// directory's) into dir, with the pprof overlay when profiling.
func buildServer(ctx context.Context, src, dir string, profile bool) (string, error) {
	bin := filepath.Join(dir, "streamer")
	args := []string{"build", "-o", bin}
	if profile {
		// The overlay adds a file to cmd/streamer; its path must be the
		// package directory's.
		list := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", "github.com/streamer-dev/streamer/cmd/streamer")
		list.Dir = src
		out, err := list.Output()
		if err != nil {
			return "", fmt.Errorf("go list cmd/streamer: %w", err)
		}
		src := filepath.Join(dir, "zz_bench_pprof.go")
		if err := os.WriteFile(src, []byte(pprofOverlay), 0o644); err != nil {
			return "", err
		}
		overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {
			filepath.Join(strings.TrimSpace(string(out)), "zz_bench_pprof.go"): src,
		}})
		ov := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ov, overlay, 0o644); err != nil {
			return "", err
		}
		args = append(args, "-overlay", ov)
	}
	args = append(args, "github.com/streamer-dev/streamer/cmd/streamer")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/streamer: %w\n%s", err, out)
	}
	return bin, nil
}
