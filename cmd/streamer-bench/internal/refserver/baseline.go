package refserver

import (
	"flag"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The baseline: the minimal net/http SSE broadcaster the issue compares
// streamer with. No database and no history: a goroutine (net/http's, running
// the handler) and a buffered channel per subscriber, a map from stream to
// subscribers under a RWMutex, each event encoded once and the same bytes
// sent to every subscriber's channel, one Write and one Flush per event. When
// a subscriber's channel (64 events) is full the publisher waits for it, up
// to 5 seconds, then drops the subscriber (the bench reports it): on this
// shared machine a busy moment must not cost the baseline its subscribers,
// and a dead one must not stall it. It sends a ": ping" comment after
// Heartbeat without events, like streamer.
//
// Publishing is POST /publish with one event per line, "<stream>\t<data>";
// the response is sent once every event has been put on its subscribers'
// channels.

type broadcaster struct {
	heartbeat time.Duration
	buffer    int

	mu     sync.RWMutex
	subs   map[string]map[*baseSub]struct{}
	nextID int64 // under mu (write lock)
}

type baseSub struct {
	ch   chan []byte
	gone chan struct{} // closed when the subscriber is dropped
	once sync.Once
}

func (s *baseSub) drop() { s.once.Do(func() { close(s.gone) }) }

// BaselineMain runs the baseline server with the flags in args until
// SIGTERM or SIGINT, and returns the exit code.
func BaselineMain(args []string) int {
	fs := flag.NewFlagSet("streamer-bench baseline-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "interval of ': ping' comments on idle connections")
	buffer := fs.Int("buffer", 64, "channel capacity per subscriber, in events")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (profiling runs)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b := &broadcaster{heartbeat: *heartbeat, buffer: *buffer, subs: map[string]map[*baseSub]struct{}{}}
	return serve("baseline-server", *addr, *pprofAddr, routes(b.handleEvents, b.handlePublish), 5*time.Second)
}

func (b *broadcaster) handleEvents(w http.ResponseWriter, r *http.Request) {
	streams := r.URL.Query()["stream"]
	if len(streams) == 0 {
		http.Error(w, "missing stream", http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	sub := &baseSub{ch: make(chan []byte, b.buffer), gone: make(chan struct{})}
	b.mu.Lock()
	for _, s := range streams {
		if b.subs[s] == nil {
			b.subs[s] = map[*baseSub]struct{}{}
		}
		b.subs[s][sub] = struct{}{}
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		for _, s := range streams {
			delete(b.subs[s], sub)
			if len(b.subs[s]) == 0 {
				delete(b.subs, s)
			}
		}
		b.mu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": baseline\nretry: 2000\n\n")
	flusher.Flush()

	ticker := time.NewTicker(b.heartbeat)
	defer ticker.Stop()
	for {
		select {
		case frame := <-sub.ch:
			if _, err := w.Write(frame); err != nil {
				return
			}
			flusher.Flush()
			ticker.Reset(b.heartbeat)
		case <-ticker.C:
			if _, err := io.WriteString(w, ": ping\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-sub.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (b *broadcaster) handlePublish(w http.ResponseWriter, r *http.Request) {
	if n, ok := readPublish(w, r, b.publish); ok {
		io.WriteString(w, strconv.Itoa(n)+"\n")
	}
}

// publish encodes one event and offers it to every subscriber of stream.
func (b *broadcaster) publish(stream string, data []byte) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.mu.Unlock()
	frame := encodeFrame(id, data)

	b.mu.RLock()
	defer b.mu.RUnlock()
	var timeout <-chan time.Time
	for sub := range b.subs[stream] {
		select {
		case sub.ch <- frame:
			continue
		default:
		}
		// The channel is full: wait for the subscriber, up to slowTimeout
		// for the whole event, then drop it.
		if timeout == nil {
			timeout = time.After(slowTimeout)
		}
		select {
		case sub.ch <- frame:
		case <-sub.gone:
		case <-timeout:
			sub.drop()
		}
	}
}

// slowTimeout is how long one event may wait for full subscriber channels
// before the subscribers still full are dropped.
const slowTimeout = 5 * time.Second
