package dispatch

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/silence"
	"github.com/streamer-dev/streamer/internal/sse"
)

// maxFilterStreams is the most streams a live read names in its query; with
// more interest than that it reads every stream and drops what nobody wants.
const maxFilterStreams = 1000

// errReplayFailed is the cause given to a subscriber whose replay failed.
var errReplayFailed = errors.New("replay failed")

// run is the dispatcher goroutine: the only writer of the dispatcher's state
// and of the registry.
func (d *Dispatcher) run(ctx context.Context) {
	defer func() {
		if d.retry != nil {
			d.retry.Stop()
		}
		if d.idTimer != nil {
			d.idTimer.Stop()
		}
	}()
	for {
		var (
			jobs   chan replayJob
			next   replayJob
			retryC <-chan time.Time
			idC    <-chan time.Time
		)
		d.dropStaleJobs()
		if len(d.pending) > 0 {
			jobs, next = d.jobs, d.pending[0]
		}
		if d.retry != nil {
			retryC = d.retry.C
		}
		if d.idTimer != nil {
			idC = d.idTimer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wakeCh:
			d.woken(ctx)
		case <-retryC:
			d.retry = nil
			d.readLive(ctx)
		case <-d.cmdCh:
			for _, cmd := range d.takeCommands() {
				switch cmd.kind {
				case cmdConnect:
					d.connect(cmd)
				case cmdDisconnect:
					d.disconnect(cmd.sub)
				}
			}
		case res := <-d.results:
			d.replayDone(res)
		case jobs <- next:
			d.pending = d.pending[1:]
		case <-idC:
			d.idTimer = nil
			d.cfg.TestSignals.IDFrames.Signal(d.flushSkipped())
		}
		d.scheduleIDFrames()
		d.endTurn()
	}
}

// dropStaleJobs drops queued replay jobs whose subscriber has gone (or
// connected again) since they were queued, so no worker spends a read on
// them.
func (d *Dispatcher) dropStaleJobs() {
	for len(d.pending) > 0 {
		st := d.states[d.pending[0].sub]
		if st != nil && st.replay == d.pending[0].round {
			return
		}
		d.pending = d.pending[1:]
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
	if old, ok := d.states[cmd.sub]; ok { // resubscribe: forget the old state
		d.forget(old)
	}
	from := d.head
	if cmd.from != nil {
		from = *cmd.from
	}
	st := &subState{sub: cmd.sub, scan: from, aud: cmd.aud}
	d.states[cmd.sub] = st
	d.filterStale = true
	cmd.reply <- from
	if cmd.from == nil {
		d.cfg.Registry.Add(st.sub, cmd.streams)
		d.cfg.TestSignals.Live.Signal(st.sub)
		return
	}
	st.replay = &replayState{streams: cmd.streams}
	for _, s := range cmd.streams {
		if d.replaying[s] == nil {
			d.replaying[s] = make(map[*subState]struct{})
		}
		d.replaying[s][st] = struct{}{}
	}
	d.pending = append(d.pending, replayJob{sub: st.sub, round: st.replay, streams: cmd.streams, from: from, aud: st.aud})
	d.cfg.Metrics.ReplayStarted()
}

func (d *Dispatcher) disconnect(sub Subscriber) {
	if st, ok := d.states[sub]; ok {
		d.forget(st)
	}
}

// forget drops every trace of st: from the registry when it is live, from
// replaying when it is not.
func (d *Dispatcher) forget(st *subState) {
	delete(d.states, st.sub)
	d.filterStale = true
	if st.replay == nil {
		d.cfg.Registry.Remove(st.sub)
		clear(d.live) // drops the streams nobody subscribes to any more
		return
	}
	d.unindexReplay(st)
}

func (d *Dispatcher) unindexReplay(st *subState) {
	for _, s := range st.replay.streams {
		if set := d.replaying[s]; set != nil {
			delete(set, st)
			if len(set) == 0 {
				delete(d.replaying, s)
			}
		}
	}
}

// replayDone finishes a subscriber's connect sequence: the buffered live
// events after the replay's cursor are enqueued (de-duplicated by position)
// and the subscriber goes live. If too many live events arrived meanwhile,
// another replay round starts from the cursor instead.
func (d *Dispatcher) replayDone(res replayResult) {
	st, ok := d.states[res.sub]
	if !ok || st.replay == nil || st.replay != res.round {
		return // disconnected (or connected again) meanwhile
	}
	rs := st.replay
	if res.err != nil {
		d.cfg.Logger.Warn().Err(res.err).Msg("replay failed; closing subscriber")
		st.sub.Close(errors.Join(errReplayFailed, res.err))
		d.forget(st)
		return
	}
	if st.scan.Less(res.cursor) {
		st.scan = res.cursor
	}
	if rs.overflow || len(rs.buffer) > d.cfg.MaxBuffered {
		rs.overflow, rs.buffer = false, nil
		d.pending = append(d.pending, replayJob{sub: st.sub, round: rs, streams: rs.streams, from: st.scan, aud: st.aud})
		d.cfg.TestSignals.ReplayRound.Signal(st.sub)
		return
	}
	// The subscriber joins the registry before its buffer is enqueued, so
	// that deliver can drop it like any live subscriber; nothing is read
	// between the two.
	d.unindexReplay(st)
	st.replay = nil
	d.cfg.Registry.Add(st.sub, rs.streams)
	if !d.checkJoinGap(st) {
		return
	}
	for _, ev := range rs.buffer {
		var frame []byte
		if !d.deliver(st, ev, &frame) {
			return
		}
	}
	d.cfg.TestSignals.Live.Signal(st.sub)
}

// streamsToRead returns the stream filter of the next live read (nil: every
// stream) and whether anybody is subscribed at all. The filter is rebuilt
// only after a subscriber came or went, and not at all while the registry
// alone has more streams than a filter may name.
func (d *Dispatcher) streamsToRead() (streams []string, some bool) {
	live := d.cfg.Registry.Streams()
	switch {
	case live == 0 && len(d.replaying) == 0:
		return nil, false
	case live > maxFilterStreams:
		return nil, true
	}
	if d.filterStale {
		names := d.cfg.Registry.AppendStreams(d.filter[:0])
		names = slices.AppendSeq(names, maps.Keys(d.replaying))
		slices.Sort(names)
		names = slices.Compact(names)
		d.filter, d.filterStale = names, false
	}
	if len(d.filter) > maxFilterStreams {
		return nil, true
	}
	return d.filter, true
}

// woken serves what the wake handed over: a read when one was asked for,
// then the ticks' notes in order. A note is applied as the read it stands
// for when the live head is where its tick began (applyNote); the first
// that is not is served by one read, which also covers every note after it
// (each was committed before it was received, so before the read's
// snapshot). A full page or a failed read leaves a wake or a retry that
// reads on from the head.
func (d *Dispatcher) woken(ctx context.Context) {
	notes, read, recheckSender := d.takeWake()
	if recheckSender {
		// The backend recorded as the sequencer's may have changed (a
		// sequencer announced itself, or the listener reconnected and may
		// have missed that), and the old one's PID may be reused by any
		// session: trust no note before reading it again.
		d.tickPID = 0
	}
	if read {
		d.readLive(ctx)
	}
	for i := range notes {
		outcome := d.applyNote(ctx, &notes[i])
		d.cfg.Metrics.TickNotes(outcome, 1)
		if outcome != metrics.NoteApplied && outcome != metrics.NoteCovered {
			if rest := len(notes) - i - 1; rest > 0 {
				d.cfg.Metrics.TickNotes(metrics.NoteRead, rest)
			}
			d.readLive(ctx)
			return
		}
	}
}

// applyNote applies one tick's note without reading if it can, and says
// what became of it: metrics.NoteApplied or NoteCovered when it needs no
// read, NoteRead or NoteUntrusted when it does. A note the head is
// already at or past is served, whoever sent it: it changes nothing (so a
// tick run by streamer.head(), read once, costs no look-up per note).
// Nobody subscribed: the head moves to the note's end (what a head read
// would have found at least). A complete note that starts at the head
// holds exactly what a read from the head would return up to the note's
// end: a tick numbered
// every commit after its prev up to its last seq, and its notes carry
// those commits' events in contiguous runs (migrations/010_tick_parts.sql),
// so it is fanned out as that read. Anything else needs a read, and so
// does a note that did not come from the leading sequencer's backend
// (trustedSender): a payload proves nothing by itself.
func (d *Dispatcher) applyNote(ctx context.Context, n *tickNote) string {
	next := n.to
	if !d.head.Less(next) {
		return metrics.NoteCovered // changes nothing, whoever sent it
	}
	if !d.trustedSender(ctx, n.pid) {
		return metrics.NoteUntrusted
	}
	if d.cfg.Registry.Streams() == 0 && len(d.replaying) == 0 {
		d.head = next
		d.cfg.TestSignals.LiveRead.Signal(LiveRead{HeadOnly: true, Notified: true})
		return metrics.NoteApplied
	}
	if !n.complete || d.head != n.from {
		return metrics.NoteRead
	}
	for i := range n.events {
		d.fanout(&n.events[i])
	}
	d.head = next
	d.cfg.TestSignals.LiveRead.Signal(LiveRead{Events: len(n.events), Notified: true})
	return metrics.NoteApplied
}

// trustedSender reports whether pid is the leading sequencer's backend,
// which alone sends tick payloads to be applied. The PID is read again
// from streamer.ordering when a note comes from another (after a failover,
// a tick run by streamer.head(), or a forger), and after a sequencer
// announced itself or a Wake (woken: once its backend is gone, the old PID
// may be any session's): one small query, and the note is read instead
// unless it now matches. A failed lookup trusts nothing.
func (d *Dispatcher) trustedSender(ctx context.Context, pid uint32) bool {
	if pid != 0 && pid == d.tickPID {
		return true
	}
	var leader *int32
	began := time.Now()
	rctx, cancel := d.bounded(ctx)
	defer cancel()
	err := d.cfg.Pool.QueryRow(rctx, "SELECT sequencer_pid FROM streamer.ordering").Scan(&leader)
	d.readDone(ctx, metrics.ReadSequencer, began, err)
	if err != nil {
		d.cfg.Logger.Warn().Err(err).Msg("look up the sequencing backend; reading instead")
		return false
	}
	d.tickPID = 0
	if leader != nil {
		d.tickPID = uint32(*leader)
	}
	if pid != d.tickPID {
		d.cfg.TestSignals.Untrusted.Signal(pid)
		return false
	}
	return true
}

// readLive reads the commits after the live head and fans their events out.
// After a full page it wakes itself instead of looping, so that connects and
// disconnects are served between pages while it keeps reading until caught
// up.
func (d *Dispatcher) readLive(ctx context.Context) {
	rctx, cancel := d.bounded(ctx)
	defer cancel()
	streams, some := d.streamsToRead()
	began := time.Now()
	if !some {
		head, err := readHead(rctx, d.cfg.Pool)
		d.readDone(ctx, metrics.ReadHead, began, err)
		if err != nil {
			d.readFailed(ctx, err)
			return
		}
		if d.head.Less(head) {
			d.head = head
		}
		d.cfg.TestSignals.LiveRead.Signal(LiveRead{HeadOnly: true})
		return
	}
	p, err := readPage(rctx, d.cfg.Pool, d.head, streams, d.cfg.PageSize, nil)
	d.readDone(ctx, metrics.ReadLive, began, err)
	if err != nil {
		d.readFailed(ctx, err)
		return
	}
	d.liveHorizon(p.horizon)
	for i := range p.events {
		d.fanout(&p.events[i])
	}
	d.head = p.next
	if p.full {
		d.readOn()
		return
	}
	d.cfg.TestSignals.LiveRead.Signal(LiveRead{Events: len(p.events), Streams: len(streams)})
}

// bounded returns ctx bounded by ReadTimeout, for one statement (or one
// page's statements).
func (d *Dispatcher) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.ReadTimeout)
}

// readDone reports a read of kind that began at began and ended with err
// (nil: it succeeded), under ctx, the dispatcher's run: to Metrics, as
// failed unless err is the run's end (stopping is not a failure); and
// when it ran out its ReadTimeout, it closes the pool's connections
// (silence.DropOnTimeout). Safe on any goroutine.
func (d *Dispatcher) readDone(ctx context.Context, kind string, began time.Time, err error) {
	failed := err != nil && ctx.Err() == nil
	d.cfg.Metrics.DBRead(kind, time.Since(began), failed)
	if failed && silence.DropOnTimeout(d.cfg.Pool, err) {
		d.cfg.Logger.Warn().Dur("read_timeout", d.cfg.ReadTimeout).Msg("a read timed out; closing the read pool's connections")
	}
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
// scanned past it and may see it, skips it for those that may not, and
// buffers it for those still replaying.
func (d *Dispatcher) fanout(ev *event) {
	var frame []byte // encoded once, for the first subscriber that sees ev
	if ev.audience != nil && ev.audMask == 0 {
		ev.audMask = audienceMask(ev.audience) // once per event, for sees
	}
	for _, st := range d.liveStates(ev.stream) {
		if st == nil || st.replay != nil {
			continue // not in states when the cache was filled
		}
		d.deliver(st, ev, &frame)
	}
	for st := range d.replaying[ev.stream] {
		rs := st.replay
		if rs.overflow {
			continue
		}
		if len(rs.buffer) >= d.cfg.MaxBuffered {
			rs.overflow, rs.buffer = true, nil
			continue
		}
		rs.buffer = append(rs.buffer, ev)
	}
}

// liveStates is the states of a stream's live subscribers, looked up in
// Dispatcher.states from one registry snapshot.
type liveStates struct {
	snap   []Subscriber
	states []*subState
}

// liveStates returns the states of stream's live subscribers, looked up
// once per registry snapshot rather than once per event: the registry makes
// a new snapshot after every change to the stream's subscribers, and a
// snapshot held here is never reused for another, so the same snapshot
// means the same subscribers. A subscriber dropped during a read leaves the
// registry, so the next event finds a new snapshot.
func (d *Dispatcher) liveStates(stream string) []*subState {
	snap := d.cfg.Registry.Lookup(stream)
	if len(snap) == 0 {
		delete(d.live, stream)
		return nil
	}
	ls := d.live[stream]
	if ls != nil && len(ls.snap) == len(snap) && &ls.snap[0] == &snap[0] {
		return ls.states
	}
	if ls == nil {
		ls = &liveStates{}
		d.live[stream] = ls
	}
	ls.snap, ls.states = snap, ls.states[:0]
	for _, sub := range snap {
		ls.states = append(ls.states, d.states[sub])
	}
	return ls.states
}

// deliver enqueues ev for the live subscriber st unless st has already
// scanned past it or may not see it; a hidden event only moves st's scan
// cursor (and is remembered for flushSkipped). *frame is ev's frame, encoded
// here on first use and kept for the next subscriber. It reports false when
// the subscriber could not keep up and was dropped.
func (d *Dispatcher) deliver(st *subState, ev *event, frame *[]byte) bool {
	if !st.scan.Less(ev.pos) {
		return true
	}
	st.scan = ev.pos
	if !st.aud.sees(ev) {
		st.skipped = true
		if !st.listed {
			st.listed = true
			d.skipped = append(d.skipped, st)
		}
		return true
	}
	st.skipped = false
	if *frame == nil {
		*frame = encode(ev)
	}
	if !d.queuedOn(st, st.sub.EnqueueHeld(*frame, ev.committed)) {
		return false
	}
	d.hold(st)
	return true
}

// queuedOn counts a frame queued on st when ok, and otherwise (st's queue
// was full) drops st and reports false.
func (d *Dispatcher) queuedOn(st *subState, ok bool) bool {
	if !ok {
		// The HTTP side logs the close with the client's address.
		d.cfg.Logger.Debug().Msg("dropping subscriber that cannot keep up")
		d.dropped(st.sub)
		d.forget(st)
		return false
	}
	d.queued++
	return true
}

// scheduleIDFrames starts idTimer at the end of a loop turn that left
// subscribers listed for an id-only frame, unless it runs already: one timer
// for the dispatcher, none per connection.
func (d *Dispatcher) scheduleIDFrames() {
	if len(d.skipped) > 0 && d.idTimer == nil {
		d.idTimer = time.NewTimer(d.cfg.IDFrameDelay)
	}
}

// flushSkipped sends an id-only frame to every live subscriber whose last
// considered event is hidden (see deliver), so that its Last-Event-ID moves
// to its scan cursor without an event, and returns how many it sent. It runs
// when idTimer fires, so a subscriber waits at most IDFrameDelay for its
// frame, and one that skips hidden events continuously gets at most one
// frame per IDFrameDelay rather than one per loop turn. A subscriber that
// skipped hidden events and then received an event needs none: that
// event's id is past them.
func (d *Dispatcher) flushSkipped() (sent int) {
	for _, st := range d.skipped {
		st.listed = false
		if !st.skipped {
			continue
		}
		st.skipped = false
		if d.states[st.sub] != st || st.replay != nil {
			continue // dropped or resubscribed meanwhile
		}
		if st.scan != d.idPos || d.idFrame == nil {
			d.idPos, d.idFrame = st.scan, encodeID(st.scan)
		}
		if !st.sub.Enqueue(d.idFrame) {
			d.cfg.Logger.Debug().Msg("dropping subscriber that cannot keep up")
			d.dropped(st.sub)
			d.forget(st)
			continue
		}
		sent++
	}
	clear(d.skipped)
	d.skipped = d.skipped[:0]
	return sent
}

// encodeID returns a frame that carries only pos as its id.
func encodeID(pos cursor.Position) []byte {
	var idBuf [40]byte
	return sse.AppendID(nil, string(pos.Append(idBuf[:0])))
}

// encode returns ev's SSE frame; its id is ev's resume token.
func encode(ev *event) []byte {
	var idBuf [40]byte
	id := ev.pos.Append(idBuf[:0])
	return sse.AppendEvent(make([]byte, 0, len(ev.data)+len(ev.typ)+64), string(id), ev.typ, ev.data)
}

// replayWorker serves replay jobs until ctx ends.
func (d *Dispatcher) replayWorker(ctx context.Context) {
	jobs, results := d.jobs, d.results
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-jobs:
			res := d.replay(ctx, job)
			select {
			case results <- res:
			case <-ctx.Done():
				return
			}
		}
	}
}

// replay enqueues every event after job.from on the job's streams, waiting
// for room in the subscriber's queue, and returns the position it read to.
func (d *Dispatcher) replay(ctx context.Context, job replayJob) replayResult {
	res := replayResult{sub: job.sub, round: job.round, cursor: job.from}
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
		p, err := d.replayPage(ctx, res.cursor, job.streams, job.aud)
		if err != nil {
			res.err = err
			return res
		}
		if d.pace != nil && len(p.frames) > 0 {
			began := time.Now()
			err := d.pace.WaitN(ctx, len(p.frames))
			d.cfg.Metrics.ReplayPaced(time.Since(began))
			if err != nil {
				res.err = err
				return res
			}
		}
		if p.gap != nil {
			if err := job.sub.EnqueueWait(ctx, p.gap); err != nil {
				res.err = err
				return res
			}
		}
		n, err := d.enqueuePage(ctx, job.sub, p)
		if n > 0 {
			res.cursor = p.last[n-1]
			if events := min(n, p.events); events > 0 {
				d.cfg.Metrics.Delivered(events)
				d.cfg.Metrics.Replayed(events)
			}
		}
		if err != nil {
			res.err = err
			return res
		}
		res.cursor = p.next
		if !p.full {
			return res
		}
	}
}

// enqueuePage queues p's frames on sub, waiting for room, and returns how
// many it queued.
func (d *Dispatcher) enqueuePage(ctx context.Context, sub Subscriber, p replayedPage) (int, error) {
	for i, frame := range p.frames {
		if err := sub.EnqueueWait(ctx, frame); err != nil {
			return i, err
		}
	}
	return len(p.frames), nil
}

// replayPage returns the encoded page after from as the audience aud sees
// it, from the page cache when another replay with the same audience has
// read it already and the page is still retained. Hidden events have no
// frame; when the page ends with hidden events, its last frame carries only
// the last one's id.
func (d *Dispatcher) replayPage(ctx context.Context, from cursor.Position, streams []string, aud *audience) (replayedPage, error) {
	rctx, cancel := d.bounded(ctx)
	defer cancel()
	key := keyFor(from, streams, aud)
	if cp, ok := d.cache.get(key); ok && d.cachedPageRetained(rctx, from) {
		d.cfg.Metrics.ReplayPageCached()
		d.cfg.TestSignals.PageCacheHit.Signal(from)
		return replayedPage{cachedPage: cp, full: true}, nil
	}
	began := time.Now()
	p, err := readPage(rctx, d.cfg.Pool, from, streams, d.cfg.PageSize, aud)
	d.readDone(ctx, metrics.ReadReplay, began, err)
	if err != nil {
		return replayedPage{}, err
	}
	d.cfg.TestSignals.ReplayRead.Signal(from)
	d.cache.advance(p.horizon)
	cp := &cachedPage{key: key, next: p.next}
	add := func(frame []byte, pos cursor.Position) {
		cp.frames = append(cp.frames, frame)
		cp.last = append(cp.last, pos)
		cp.size += len(frame) + 64
	}
	for i := range p.events {
		if !p.events[i].hidden {
			add(encode(&p.events[i]), p.events[i].pos)
		}
	}
	cp.events = len(cp.frames)
	if n := len(p.events); n > 0 && p.events[n-1].hidden {
		add(encodeID(p.events[n-1].pos), p.events[n-1].pos)
	}
	if p.full {
		d.cache.put(cp)
	}
	return replayedPage{cachedPage: cp, full: p.full, gap: replayGap(from, p.horizon)}, nil
}

type replayedPage struct {
	*cachedPage
	full bool
	gap  []byte // the gap frame to send before the page, or nil (gap.go)
}
