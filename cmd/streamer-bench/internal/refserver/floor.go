package refserver

import (
	"flag"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// The floor: not an SSE server anyone would run, but the least a server can
// do per delivery, as a reference for what is left to gain. Connections are
// taken over from net/http after the response head; publishing writes each
// event's frame, encoded once, to every subscriber's socket with one
// write(2) each, from the publishing goroutine: no goroutine or buffer per
// connection, no queue, no write deadline, no heartbeat. A socket that would
// block is dropped. What it costs per delivery is the kernel's write path
// (on loopback, that includes the receiving side's TCP processing) plus
// Go's netpoll bookkeeping.

type floorServer struct {
	mu     sync.Mutex
	subs   map[string][]*floorSub
	nextID int64
}

type floorSub struct {
	nc   net.Conn
	raw  syscall.RawConn
	dead bool
}

// FloorMain runs the floor server with the flags in args until SIGTERM or
// SIGINT, and returns the exit code.
func FloorMain(args []string) int {
	fs := flag.NewFlagSet("streamer-bench floor-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8091", "listen address")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (profiling runs)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := &floorServer{subs: map[string][]*floorSub{}}
	return serve("floor-server", *addr, *pprofAddr, routes(f.handleEvents, f.handlePublish), 0)
}

func (f *floorServer) handleEvents(w http.ResponseWriter, r *http.Request) {
	stream := r.URL.Query().Get("stream")
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n: floor\n\n"
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		nc.Close()
		return
	}
	// The head goes out under the lock that publish holds, and the
	// subscriber is registered before the lock is released: a client that
	// has read the head is subscribed, and no frame can precede the head.
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := io.WriteString(nc, head); err != nil {
		nc.Close()
		return
	}
	f.subs[stream] = append(f.subs[stream], &floorSub{nc: nc, raw: raw})
}

func (f *floorServer) handlePublish(w http.ResponseWriter, r *http.Request) {
	if _, ok := readPublish(w, r, f.publish); ok {
		io.WriteString(w, "ok\n")
	}
}

func (f *floorServer) publish(stream string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	frame := encodeFrame(f.nextID, data)
	for _, s := range f.subs[stream] {
		if s.dead {
			continue
		}
		var n int
		var werr error
		err := s.raw.Write(func(fd uintptr) bool {
			n, werr = syscall.Write(int(fd), frame)
			return true // one attempt: never wait
		})
		if err != nil || werr != nil || n != len(frame) {
			s.dead = true
			s.nc.Close()
		}
	}
}
