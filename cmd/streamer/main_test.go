package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// runMainEnv makes the test binary act as the streamer binary, so that
// process-level tests (signals, exit codes) need no separate build.
const runMainEnv = "STREAMER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			require.Equal(t, 0, run(args, &out, &errOut), errOut.String())
			for _, want := range []string{
				"DATABASE_URL", "--database-url",
				"STREAMER_ADDR", "--addr", ":8080",
				"STREAMER_HEARTBEAT", "15s", "STREAMER_RETRY", "2s",
				"STREAMER_MAX_CONNECTIONS", "10000", "STREAMER_MAX_STREAMS", "32",
				"STREAMER_SHUTDOWN_TIMEOUT", "10s",
				"STREAMER_LOG_LEVEL", "info", "STREAMER_LOG_FORMAT", "json",
				"STREAMER_ALLOW_ANONYMOUS_PUBLISH", "STREAMER_UI",
				"STREAMER_PUBLISH_MAX_CONCURRENT", "--publish-max-concurrent",
				"STREAMER_JWT_SECRET", "STREAMER_JWT_PUBLIC_KEY_FILE", "STREAMER_JWT_JWKS_URL",
				"STREAMER_JWT_ISSUER", "STREAMER_JWT_AUDIENCE", "STREAMER_PUBLIC_STREAMS",
				"STREAMER_AUTH_COOKIE", "streamer_token", "STREAMER_CORS_ORIGINS",
				"STREAMER_TRUSTED_PROXIES", "STREAMER_MAX_CONNECTIONS_PER_IP", "--max-connections-per-ip",
			} {
				require.Contains(t, out.String(), want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Setenv("STREAMER_ADDR", ":9999")
	t.Setenv("STREAMER_HEARTBEAT", "3s")
	t.Setenv("STREAMER_MAX_STREAMS", "nope")

	var cfg serveConfig
	s := cfg.bind(&bytes.Buffer{})
	require.NoError(t, s.parse([]string{"--max-streams", "5", "--retry", "1s"}, ""), "a flag overrides a bad env value")
	require.Equal(t, ":9999", cfg.Addr, "env sets the default")
	require.Equal(t, 3*time.Second, cfg.Heartbeat)
	require.Equal(t, 5, cfg.MaxStreams, "flags win")
	require.Equal(t, time.Second, cfg.Retry)
	require.Equal(t, 10000, cfg.MaxConnections)

	var cfg2 serveConfig
	require.ErrorContains(t, cfg2.bind(&bytes.Buffer{}).parse(nil, ""), "STREAMER_MAX_STREAMS")
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgtest.Admin(t)
	name := fmt.Sprintf("migrate_%d", time.Now().UnixNano())
	_, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(pgtest.NewDB(t)) // same server, another database
	require.NoError(t, err)
	u.Path = "/" + name
	dbURL := u.String()

	// Several hosts at once, then again: all succeed, once applied.
	var wg sync.WaitGroup
	codes := make([]int, 4)
	outs := make([]bytes.Buffer, 4)
	for i := range codes {
		wg.Go(func() { codes[i] = run([]string{"migrate", "--database-url", dbURL}, &outs[i], &outs[i]) })
	}
	wg.Wait()
	for i, code := range codes {
		require.Equal(t, 0, code, outs[i].String())
	}
	// Whichever ran first found a new database and put it in ticks mode.
	var fresh int
	for i := range outs {
		if strings.Contains(outs[i].String(), "ordering: ticks (new database") {
			fresh++
		}
	}
	require.Positive(t, fresh, "no migrate found a new database: %s / %s / %s / %s", &outs[0], &outs[1], &outs[2], &outs[3])
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"migrate", "--database-url", dbURL}, &out, &out), out.String())
	require.Contains(t, out.String(), "ordering: ticks (unchanged", "an existing database keeps its mode")

	// A mode is switched only when asked, and a later plain migrate keeps it.
	for _, step := range []struct{ args, want string }{
		{"--ordering=trigger", "ordering: trigger (STREAMER_ORDERING)"},
		{"", "ordering: trigger (unchanged"},
		{"--ordering=ticks", "ordering: ticks (STREAMER_ORDERING)"},
		{"", "ordering: ticks (unchanged"},
	} {
		args := []string{"migrate", "--database-url", dbURL}
		if step.args != "" {
			args = append(args, step.args)
		}
		out.Reset()
		require.Equal(t, 0, run(args, &out, &out), out.String())
		require.Contains(t, out.String(), step.want, "migrate %s", step.args)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var id int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT streamer.publish('m', 'x')").Scan(&id))
	require.Positive(t, id)

	t.Run("bad database url fails", func(t *testing.T) {
		var out bytes.Buffer
		require.Equal(t, 1, run([]string{"migrate", "--database-url", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"}, &out, &out))
		require.Contains(t, out.String(), "connect")
	})
}

// TestServeSIGTERM runs the real binary (this test binary acting as it),
// subscribes, and checks that SIGTERM ends the stream with streamer.shutdown
// and the process exits 0 within the shutdown timeout.
func TestServeSIGTERM(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	addr := freeAddr(t)

	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), runMainEnv+"=1",
		"DATABASE_URL="+dbURL, "STREAMER_ADDR="+addr, "STREAMER_SHUTDOWN_TIMEOUT=5s", "STREAMER_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	base := "http://" + addr
	require.Eventually(t, func() bool { return isReady(base) }, 20*time.Second, 50*time.Millisecond, "server never became ready: %s", &stderr)

	metricsResp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	metricsBody, err := io.ReadAll(metricsResp.Body)
	metricsResp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, metricsResp.StatusCode)
	require.Contains(t, string(metricsBody), "streamer_listener_connected 1")

	resp, err := http.Get(base + "/events?stream=sig")
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ": streamer\n", line)

	began := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	var rest strings.Builder
	for {
		l, err := br.ReadString('\n')
		rest.WriteString(l)
		if err != nil {
			break
		}
	}
	require.Contains(t, rest.String(), "event: streamer.shutdown\n")
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status; stderr: %s", &stderr)
		exited <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("process did not exit within 10s of SIGTERM; stderr: %s", &stderr)
	}
	require.Less(t, time.Since(began), 5*time.Second)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
