package dispatch

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/sse"
)

// maxFilterStreams is the most streams a live read names in its query; with
// more interest than that it reads every stream and drops what nobody wants.
const maxFilterStreams = 1000

// errReplayFailed is the cause given to a subscriber whose replay failed.
var errReplayFailed = errors.New("replay failed")

// run is the dispatcher goroutine: the only writer of the dispatcher's state.
func (d *Dispatcher) run(ctx context.Context) {
	d.retry = nil
	for {
		var (
			jobs   chan replayJob
			next   replayJob
			retryC <-chan time.Time
		)
		if len(d.pending) > 0 {
			jobs, next = d.jobs, d.pending[0]
		}
		if d.retry != nil {
			retryC = d.retry.C
		}
		select {
		case <-ctx.Done():
			if d.retry != nil {
				d.retry.Stop()
			}
			return
		case <-d.wakeCh:
			d.readLive(ctx)
		case <-retryC:
			d.retry = nil
			d.readLive(ctx)
		case cmd := <-d.cmdCh:
			switch cmd.kind {
			case cmdConnect:
				d.connect(cmd)
			case cmdDisconnect:
				d.disconnect(cmd.sub)
			}
		case res := <-d.results:
			d.replayDone(res)
		case jobs <- next:
			d.pending = d.pending[1:]
		}
	}
}

// connect starts the race-free sequence for a new subscriber: from now on
// live reads buffer its streams' events, and a replay worker reads
// everything after its resume point. replayDone joins the two.
//
// A subscriber without a resume point needs no replay: it starts at the
// live head and goes live at once, since every live read from then on
// starts at or before that head and delivers to it whatever lies after.
func (d *Dispatcher) connect(cmd command) {
	if old, ok := d.subs[cmd.sub]; ok { // resubscribe: forget the old state
		d.forget(old)
	}
	from := d.head
	if cmd.from != nil {
		from = *cmd.from
	}
	st := &subState{sub: cmd.sub, streams: cmd.streams, scan: from, replaying: cmd.from != nil}
	d.subs[cmd.sub] = st
	for _, s := range st.streams {
		d.interest[s]++
	}
	cmd.reply <- from
	if !st.replaying {
		d.cfg.Registry.Add(st.sub, st.streams)
		d.cfg.TestSignals.Live.Signal(st.sub)
		return
	}
	for _, s := range st.streams {
		if d.inflight[s] == nil {
			d.inflight[s] = make(map[*subState]struct{})
		}
		d.inflight[s][st] = struct{}{}
	}
	d.pending = append(d.pending, replayJob{sub: st.sub, streams: st.streams, from: from})
}

func (d *Dispatcher) disconnect(sub Subscriber) {
	if st, ok := d.subs[sub]; ok {
		d.forget(st)
	}
}

func (d *Dispatcher) forget(st *subState) {
	delete(d.subs, st.sub)
	d.cfg.Registry.Remove(st.sub)
	for _, s := range st.streams {
		if set := d.inflight[s]; set != nil {
			delete(set, st)
			if len(set) == 0 {
				delete(d.inflight, s)
			}
		}
		if d.interest[s]--; d.interest[s] <= 0 {
			delete(d.interest, s)
		}
	}
}

// replayDone finishes a subscriber's connect sequence: the buffered live
// events after the replay's cursor are enqueued (de-duplicated by position)
// and the subscriber goes live. If too many live events arrived meanwhile,
// another replay round starts from the cursor instead.
func (d *Dispatcher) replayDone(res replayResult) {
	st, ok := d.subs[res.sub]
	if !ok || !st.replaying {
		return // disconnected meanwhile
	}
	if res.err != nil {
		d.cfg.Logger.Warn().Err(res.err).Msg("replay failed; closing subscriber")
		st.sub.Close(errors.Join(errReplayFailed, res.err))
		d.forget(st)
		return
	}
	if st.scan.Less(res.cursor) {
		st.scan = res.cursor
	}
	if st.overflow || len(st.buffer) > d.cfg.MaxBuffered {
		st.overflow, st.buffer = false, nil
		d.pending = append(d.pending, replayJob{sub: st.sub, streams: st.streams, from: st.scan})
		d.cfg.TestSignals.ReplayRound.Signal(st.sub)
		return
	}
	for _, ev := range st.buffer {
		if !d.deliver(st, ev, nil) {
			return
		}
	}
	st.buffer = nil
	st.replaying = false
	for _, s := range st.streams {
		if set := d.inflight[s]; set != nil {
			delete(set, st)
			if len(set) == 0 {
				delete(d.inflight, s)
			}
		}
	}
	d.cfg.Registry.Add(st.sub, st.streams)
	d.cfg.TestSignals.Live.Signal(st.sub)
}

// readLive reads the commits after the live head and fans their events out.
// After a full page it wakes itself instead of looping, so that connects and
// disconnects are served between pages while it keeps reading until caught
// up.
func (d *Dispatcher) readLive(ctx context.Context) {
	if len(d.interest) == 0 {
		head, err := readHead(ctx, d.cfg.Pool)
		if err != nil {
			d.readFailed(ctx, err)
			return
		}
		if d.head.Less(head) {
			d.head = head
		}
		d.cfg.TestSignals.LiveRead.Signal(0)
		return
	}
	var streams []string
	if len(d.interest) <= maxFilterStreams {
		streams = slices.Collect(maps.Keys(d.interest))
	}
	p, err := readPage(ctx, d.cfg.Pool, d.head, streams, d.cfg.PageSize)
	if err != nil {
		d.readFailed(ctx, err)
		return
	}
	for i := range p.events {
		d.fanout(&p.events[i])
	}
	d.head = p.next
	if p.full {
		d.Wake()
		return
	}
	d.cfg.TestSignals.LiveRead.Signal(len(p.events))
}

func (d *Dispatcher) readFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	d.cfg.Logger.Error().Err(err).Dur("retry_in", d.cfg.RetryInterval).Msg("live read failed")
	d.cfg.TestSignals.ReadError.Signal(err)
	if d.retry == nil {
		d.retry = time.NewTimer(d.cfg.RetryInterval)
	}
}

// fanout delivers ev to the live subscribers of its stream that have not
// scanned past it, and buffers it for those still replaying.
func (d *Dispatcher) fanout(ev *event) {
	var frame []byte
	for _, sub := range d.cfg.Registry.Lookup(ev.stream) {
		st, ok := d.subs[sub]
		if !ok || st.replaying {
			continue
		}
		if frame == nil {
			frame = encode(ev)
		}
		d.deliver(st, ev, frame)
	}
	for st := range d.inflight[ev.stream] {
		if st.overflow {
			continue
		}
		if len(st.buffer) >= d.cfg.MaxBuffered {
			st.overflow, st.buffer = true, nil
			continue
		}
		st.buffer = append(st.buffer, ev)
	}
}

// deliver enqueues ev for st unless st has already scanned past it. It
// reports false when the subscriber could not keep up and was dropped.
func (d *Dispatcher) deliver(st *subState, ev *event, frame []byte) bool {
	if !st.scan.Less(ev.pos) {
		return true
	}
	st.scan = ev.pos
	if frame == nil {
		frame = encode(ev)
	}
	if !st.sub.Enqueue(frame) {
		// The HTTP side logs the close with the client's address.
		d.cfg.Logger.Debug().Strs("streams", st.streams).Msg("dropping subscriber that cannot keep up")
		d.forget(st)
		return false
	}
	st.lastSent = ev.pos
	return true
}

// encode returns ev's SSE frame; its id is ev's resume token.
func encode(ev *event) []byte {
	var idBuf [40]byte
	id := ev.pos.Append(idBuf[:0])
	return sse.AppendEvent(make([]byte, 0, len(ev.data)+len(ev.typ)+64), string(id), ev.typ, ev.data)
}

// replayWorker serves replay jobs until ctx ends.
func (d *Dispatcher) replayWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-d.jobs:
			res := d.replay(ctx, job)
			select {
			case d.results <- res:
			case <-ctx.Done():
				return
			}
		}
	}
}

// replay enqueues every event after job.from on the job's streams, waiting
// for room in the subscriber's queue, and returns the position it read to.
func (d *Dispatcher) replay(ctx context.Context, job replayJob) replayResult {
	res := replayResult{sub: job.sub, cursor: job.from}
	for {
		select {
		case <-job.sub.Done():
			res.err = sse.ErrClosed
			return res
		case <-ctx.Done():
			res.err = context.Cause(ctx)
			return res
		default:
		}
		p, err := d.replayPage(ctx, res.cursor, job.streams)
		if err != nil {
			res.err = err
			return res
		}
		if d.pace != nil && len(p.frames) > 0 {
			if err := d.pace.WaitN(ctx, len(p.frames)); err != nil {
				res.err = err
				return res
			}
		}
		for i, frame := range p.frames {
			if err := job.sub.EnqueueWait(ctx, frame); err != nil {
				res.err = err
				return res
			}
			res.cursor = p.last[i]
			res.sent++
		}
		res.cursor = p.next
		if !p.full {
			return res
		}
	}
}

// replayPage returns the encoded page after from, from the page cache when
// another replay has read it already.
func (d *Dispatcher) replayPage(ctx context.Context, from cursor.Position, streams []string) (replayedPage, error) {
	key := keyFor(from, streams)
	if cp, ok := d.cache.get(key); ok {
		d.cfg.TestSignals.PageCacheHit.Signal(from)
		return replayedPage{cachedPage: cp, full: true}, nil
	}
	p, err := readPage(ctx, d.cfg.Pool, from, streams, d.cfg.PageSize)
	if err != nil {
		return replayedPage{}, err
	}
	cp := &cachedPage{key: key, next: p.next,
		frames: make([][]byte, len(p.events)), last: make([]cursor.Position, len(p.events))}
	for i := range p.events {
		cp.frames[i] = encode(&p.events[i])
		cp.last[i] = p.events[i].pos
		cp.size += len(cp.frames[i]) + 64
	}
	if p.full {
		d.cache.put(cp)
	}
	return replayedPage{cachedPage: cp, full: p.full}, nil
}

type replayedPage struct {
	*cachedPage
	full bool
}
