package refserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// serve runs handler on addr (and net/http/pprof on pprofAddr when set)
// until SIGTERM or SIGINT. It then shuts down, letting handlers end for up
// to grace (0: closes at once). It returns the exit code; name begins its
// error messages.
func serve(name, addr, pprofAddr string, handler http.Handler, grace time.Duration) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if pprofAddr != "" {
		go servePprof(pprofAddr)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	go func() {
		<-ctx.Done()
		if grace > 0 {
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

// servePprof serves net/http/pprof on addr, for profiling runs; it lives
// as long as the process.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	_ = http.ListenAndServe(addr, mux)
}

// routes are both servers' endpoints.
func routes(events, publish http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", events)
	mux.HandleFunc("POST /publish", publish)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux
}

// readPublish calls fn for each "<stream>\t<data>" line of a publish
// request's body, and returns how many there were. On a malformed body it
// answers 400 and returns ok false; fn may have run for the lines before.
func readPublish(w http.ResponseWriter, r *http.Request, fn func(stream string, data []byte)) (n int, ok bool) {
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		stream, data, ok := bytes.Cut(sc.Bytes(), []byte{'\t'})
		if !ok {
			http.Error(w, "want <stream>\\t<data> per line", http.StatusBadRequest)
			return n, false
		}
		fn(string(stream), data)
		n++
	}
	if err := sc.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return n, false
	}
	return n, true
}

// encodeFrame encodes one event: its id and its data (one line).
func encodeFrame(id int64, data []byte) []byte {
	f := make([]byte, 0, len(data)+32)
	f = append(f, "id: "...)
	f = strconv.AppendInt(f, id, 10)
	f = append(f, "\ndata: "...)
	f = append(f, data...)
	return append(f, "\n\n"...)
}
