package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/defaults"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/sse"
	"github.com/streamer-dev/streamer/internal/startstop"
)

// Subscriber is where the dispatcher puts a connection's frames. sse.Conn
// implements it.
type Subscriber interface {
	// Enqueue queues a frame without waiting; false means the subscriber
	// could not keep up and has been closed.
	Enqueue(frame []byte) bool
	// EnqueueHeld is Enqueue for a live event's frame, with the event's
	// commit time (zero if unknown) for the delivery lag, which the
	// subscriber observes once the frame is on the socket. The subscriber
	// may hold the frame until Release rather than start a write for it.
	EnqueueHeld(frame []byte, committed time.Time) bool
	// Release ends a loop turn's EnqueueHeld calls: what they queued is
	// written now. It must not block.
	Release()
	// EnqueueWait queues a frame, waiting for room (replay backpressure).
	EnqueueWait(ctx context.Context, frame []byte) error
	// Close ends the subscriber with a cause. It must not block.
	Close(cause error)
	// Done is closed once the subscriber is closed.
	Done() <-chan struct{}
}

var _ Subscriber = (*sse.Conn)(nil)

// ErrStopped is returned by Subscribe while the dispatcher is not running,
// and is the cause given to the subscribers it closes when it stops.
var ErrStopped = errors.New("dispatcher stopped")

// Config configures a Dispatcher.
type Config struct {
	// Pool serves the dispatcher's reads; it needs at least ReplayWorkers+1
	// connections to run every reader at once.
	Pool *pgxpool.Pool
	// Registry receives subscribers once they are live; the dispatcher is
	// its only writer. Required.
	Registry *registry.Registry[Subscriber]
	// PageSize bounds the events one read returns. Default 500.
	PageSize int
	// ReplayWorkers bounds concurrent replays (and so the pool connections
	// they hold). Default 4.
	ReplayWorkers int
	// MaxBuffered bounds the live events held for one connecting subscriber
	// while its replay runs; past it the buffer is dropped and the replay
	// runs another round from where it got to. Default 256.
	MaxBuffered int
	// RetryInterval is how long to wait before reading again after a failed
	// live read. Default 1s.
	RetryInterval time.Duration
	// ReadTimeout bounds each statement the dispatcher runs: a live read, a
	// replay's page, a look-up. Without it a read-pool connection that went
	// silent (a dead host, a dropped NAT entry: no FIN or RST ever comes)
	// would hold the dispatcher goroutine, and with it every connect and
	// every live delivery of the server, until TCP gave up, a quarter of an
	// hour. A live read cut short is retried after RetryInterval; a replay
	// cut short closes its subscriber, which resumes. Default 10s: a page
	// is a bounded index range and takes milliseconds.
	ReadTimeout time.Duration
	// PageCacheBytes bounds the replay page cache (encoded frames of full
	// pages, shared by replays that resume from the same place). Default
	// 32 MiB; negative disables it.
	PageCacheBytes int
	// IDFrameDelay bounds how long a live subscriber whose last considered
	// event was hidden waits for the id-only frame that moves its
	// Last-Event-ID past it; a visible event sent meanwhile makes the frame
	// unnecessary. The server passes its heartbeat interval, so an idle
	// connection gets its id-only frame by its next heartbeat. Default 15s.
	IDFrameDelay time.Duration
	// ReplayRate bounds the events all replays together hand to their
	// connections per second, so that a reconnect storm leaves CPU for live
	// delivery; it is taken a page at a time. Zero or negative: no bound.
	ReplayRate float64
	// Metrics receives delivery counts, read times and the delivery lag;
	// nil counts nothing.
	Metrics Metrics
	Logger  zerolog.Logger
	// TestSignals, when set and initialised, report progress to tests.
	TestSignals *TestSignals
}

func (c *Config) setDefaults() {
	defaults.Positive(&c.PageSize, 500)
	defaults.Positive(&c.ReplayWorkers, 4)
	defaults.Positive(&c.MaxBuffered, 256)
	defaults.Positive(&c.RetryInterval, time.Second)
	defaults.Positive(&c.ReadTimeout, 10*time.Second)
	defaults.Positive(&c.IDFrameDelay, 15*time.Second)
	if c.PageCacheBytes == 0 {
		c.PageCacheBytes = 32 << 20
	}
	if c.TestSignals == nil {
		c.TestSignals = &TestSignals{}
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
}

// Dispatcher reads committed events and fans them out. See the package
// documentation for the ordering argument.
type Dispatcher struct {
	startstop.Base
	cfg Config

	wakeCh chan struct{} // capacity 1: a pending wake
	cmdCh  chan struct{} // capacity 1: commands are waiting in cmds

	// noteLog warns of notifications not understood, at most once a
	// minute: a server that predates a payload version would otherwise log
	// every one (several per tick) until it is upgraded.
	noteLog zerolog.Logger

	cache *pageCache // nil when disabled; shared by the replay workers
	// pace spaces out the replay workers' pages; nil without a ReplayRate.
	pace *rate.Limiter

	// mu guards running, cmds, notes, readWanted and recheckSender: the
	// hand-off from Subscribe, Unsubscribe, Wake and Notified, which never
	// wait on the dispatcher goroutine.
	mu      sync.Mutex
	running bool      // between a successful Start and the end of that run
	cmds    []command // in the order they were made
	// notes are the ticks' notifications not yet taken, in the order they
	// arrived (at most maxNotes: a read covers any number); readWanted
	// says a Wake asked for a read; recheckSender, that the sequencer's
	// backend must be read again before a note is trusted (a sequencer
	// announced itself, or a Wake came: after a listener reconnects, one
	// may have been missed).
	notes         []tickNote
	readWanted    bool
	recheckSender bool

	// Set by Start before the run's goroutines begin; one pair per run, so
	// that nothing of a stopped run reaches the next one.
	jobs    chan replayJob
	results chan replayResult

	// Owned by the run goroutine (and by Start and the end of the run,
	// which happen before and after it).
	head cursor.Position
	// tickPID is the leading sequencer's backend as last read from
	// streamer.ordering (0: not read yet); notes from it alone are applied.
	tickPID uint32
	// liveLost is the newest pruned horizon a live read found past head
	// (gap.go); the zero position until then.
	liveLost cursor.Position
	// states holds every subscriber of this run: its scan cursor, and its
	// replay while it has one. Which streams a live subscriber receives is
	// in the registry alone.
	states map[Subscriber]*subState
	// live caches, per stream, the states of the registry's snapshot of
	// its subscribers (see liveStates); emptied when a live subscriber goes.
	live map[string]*liveStates
	// replaying indexes the subscribers still replaying by stream.
	replaying map[string]map[*subState]struct{}
	// filter is the stream names a live read asks for: every stream of the
	// registry and of replaying, or nil for every stream when there are
	// more than maxFilterStreams. Rebuilt on the first read after a
	// subscriber came or went.
	filter      []string
	filterStale bool
	pending     []replayJob
	retry       *time.Timer
	queued      int // event frames queued since the last flushDelivered
	// held lists, once each, the subscribers given frames with
	// EnqueueHeld since the last releaseHeld (subState.held set), which
	// began at heldSince (held.go).
	held      []*subState
	heldSince time.Time
	// skipped lists, once each, the subscribers that scanned past a hidden
	// event since the last flushSkipped (subState.listed set), for
	// flushSkipped to send an id-only frame to those whose last considered
	// event is still hidden when idTimer fires.
	skipped []*subState
	// idTimer runs while skipped is not empty: IDFrameDelay from the end
	// of the loop turn that listed the first of them.
	idTimer *time.Timer
	// idPos and idFrame are the last id-only frame encoded: subscribers
	// that skipped the same last event share its bytes.
	idPos   cursor.Position
	idFrame []byte
}

// subState is the dispatcher's private view of one subscriber.
type subState struct {
	sub Subscriber
	// scan: every event up to here has been considered for this
	// subscriber: sent when it could see it, skipped when it could not.
	scan cursor.Position
	// aud decides which events the subscriber may see.
	aud *audience
	// skipped: scan moved past a hidden event after the subscriber's last
	// frame, so its Last-Event-ID lags behind scan until an id-only frame.
	skipped bool
	// listed: the subscriber is in Dispatcher.skipped.
	listed bool
	// held: the subscriber is in Dispatcher.held.
	held bool
	// replay is non-nil until the subscriber goes live.
	replay *replayState
}

// replayState is a subscriber's connect sequence while it runs.
type replayState struct {
	streams []string
	// Live events read meanwhile, or overflow once more than MaxBuffered
	// arrived.
	buffer   []*event
	overflow bool
}

type commandKind int

const (
	cmdConnect commandKind = iota
	cmdDisconnect
)

type command struct {
	kind    commandKind
	sub     Subscriber
	streams []string
	from    *cursor.Position
	aud     *audience
	reply   chan cursor.Position
}

type replayJob struct {
	sub     Subscriber
	round   *replayState // identifies the connect sequence the job belongs to
	streams []string
	from    cursor.Position
	aud     *audience
}

type replayResult struct {
	sub    Subscriber
	round  *replayState
	cursor cursor.Position
	err    error
}

// New returns a dispatcher; Start runs it.
func New(cfg Config) *Dispatcher {
	cfg.setDefaults()
	var cache *pageCache
	if cfg.PageCacheBytes > 0 {
		cache = newPageCache(cfg.PageCacheBytes)
	}
	var pace *rate.Limiter
	if cfg.ReplayRate > 0 {
		pace = rate.NewLimiter(rate.Limit(cfg.ReplayRate), cfg.PageSize)
	}
	return &Dispatcher{
		cfg:     cfg,
		noteLog: cfg.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute}),
		cache:   cache,
		pace:    pace,
		wakeCh:  make(chan struct{}, 1),
		cmdCh:   make(chan struct{}, 1),
	}
}

// Start reads the current head synchronously (so a bad pool fails here) and
// starts the dispatcher goroutine and its replay workers. They run until
// Stop is called or ctx ends; then every subscriber still served is closed
// with ErrStopped and removed from the registry, so a later Start begins
// afresh. Start on a running dispatcher does nothing.
func (d *Dispatcher) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := d.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	rctx, cancel := d.bounded(ctx)
	head, err := readHead(rctx, d.cfg.Pool)
	cancel()
	if err != nil {
		// Read the cause before stopped, which cancels ctx with ErrStop.
		stoppedMeanwhile := errors.Is(context.Cause(ctx), startstop.ErrStop)
		stopped()
		if stoppedMeanwhile {
			return nil // a concurrent Stop ended this run before it began
		}
		return fmt.Errorf("start dispatcher: %w", err)
	}
	d.head, d.liveLost, d.tickPID = head, cursor.Position{}, 0
	d.states = make(map[Subscriber]*subState)
	d.live = make(map[string]*liveStates)
	d.replaying = make(map[string]map[*subState]struct{})
	d.filter, d.filterStale = nil, true
	d.pending, d.retry = nil, nil
	d.skipped, d.idTimer = nil, nil
	d.jobs = make(chan replayJob)
	d.results = make(chan replayResult, d.cfg.ReplayWorkers)
	d.mu.Lock()
	d.running, d.cmds, d.notes, d.readWanted, d.recheckSender = true, nil, nil, false, false
	d.mu.Unlock()

	var wg sync.WaitGroup
	for range d.cfg.ReplayWorkers {
		wg.Go(func() { d.replayWorker(ctx) })
	}
	wg.Go(func() { d.run(ctx) })
	go func() {
		started()
		wg.Wait()
		d.end()
		stopped()
	}()
	return nil
}

// end closes the run: Subscribe and Unsubscribe stop handing over, and every
// subscriber still served is closed (its owner sees ErrStopped and
// unsubscribes, which is then a no-op) and leaves the registry.
func (d *Dispatcher) end() {
	d.mu.Lock()
	d.running, d.cmds, d.notes = false, nil, nil
	d.mu.Unlock()
	for _, st := range d.states {
		if st.replay == nil {
			d.cfg.Registry.Remove(st.sub)
		}
		st.sub.Close(ErrStopped)
	}
	d.states, d.live, d.replaying, d.pending, d.filter = nil, nil, nil, nil, nil
}

// Wake asks the dispatcher to read new commits, and to read the
// sequencer's backend again before it trusts another tick note (the
// listener wakes after it reconnects, when it may have missed a
// sequencer's announcement). It never blocks; wakes that arrive while one
// is pending are folded into it.
func (d *Dispatcher) Wake() { d.askRead(true) }

// readOn asks the dispatcher goroutine, from itself, to read again (after
// a full page), as Wake does but trusting the sender as before.
func (d *Dispatcher) readOn() { d.askRead(false) }

// askRead hands the dispatcher goroutine a read, and with recheck a new
// look-up of the sequencer's backend.
func (d *Dispatcher) askRead(recheck bool) {
	d.mu.Lock()
	d.readWanted = true
	d.recheckSender = d.recheckSender || recheck
	d.mu.Unlock()
	d.signalWake()
}

// maxNotes bounds the notifications waiting for the dispatcher goroutine
// (a tick sends up to seventeen); past it they are dropped for one read,
// which serves them all.
const maxNotes = 128

// Notified hands the dispatcher the payload of a notification on the
// "streamer" channel and the PID of the backend that sent it. A tick's
// payloads (migrations/010_tick_parts.sql) carry its events, which the
// dispatcher fans out without reading when the sender is the leading
// sequencer's backend and its live position is where the note begins. A
// sequencer's announcement (sequencer.Announcement, sent when it records
// its backend) makes the dispatcher look the sequencer's backend up again
// before it trusts the next note. Any other payload (trigger mode's empty
// one, one it cannot parse) is a Wake. It never blocks and runs the parse
// on the caller's goroutine (the listener's).
func (d *Dispatcher) Notified(pid uint32, payload string) {
	if payload == "" {
		d.Wake()
		return
	}
	if payload == sequencer.Announcement {
		d.mu.Lock()
		if d.running {
			d.recheckSender = true
		}
		d.mu.Unlock()
		return
	}
	note, err := parseTickPayload(payload)
	if err != nil {
		d.noteLog.Warn().Err(err).Uint32("sender_pid", pid).Int("bytes", len(payload)).
			Msg("notification not understood; reading instead (logged at most once a minute; streamer_tick_notes_total{outcome=\"malformed\"} counts them)")
		d.cfg.Metrics.TickNotes(metrics.NoteMalformed, 1)
		d.Wake()
		return
	}
	note.pid = pid
	dropped := 0
	d.mu.Lock()
	switch {
	case !d.running:
	case len(d.notes) == maxNotes:
		dropped = len(d.notes) + 1
		d.notes, d.readWanted = d.notes[:0], true
	default:
		d.notes = append(d.notes, note)
	}
	d.mu.Unlock()
	if dropped > 0 {
		d.cfg.Metrics.TickNotes(metrics.NoteDropped, dropped)
	}
	d.signalWake()
}

func (d *Dispatcher) signalWake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// takeWake returns the notes handed over since the last call, whether a
// read was asked for, and whether the sequencer's backend must be read
// again (a sequencer announced itself, or a Wake came).
func (d *Dispatcher) takeWake() (notes []tickNote, read, recheckSender bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	notes, read, recheckSender = d.notes, d.readWanted, d.recheckSender
	d.notes, d.readWanted, d.recheckSender = nil, false, false
	return notes, read, recheckSender
}

// Subscribe registers sub for streams from a resume position (nil: from
// now), for a connection with the audience keys aud (its token's sub and
// streamer.audience values; nil or empty: anonymous). It returns once the
// dispatcher has taken the subscriber, with the position its delivery starts
// after: every event after it on the streams that the audience may see (its
// audience is NULL or holds one of the keys) will be enqueued exactly once,
// in order, and no other; frames carrying only an id may be enqueued between
// them to move the connection's Last-Event-ID past hidden events. The caller must call Unsubscribe
// when the subscriber ends. It returns ErrStopped at once when the
// dispatcher is not running, and ctx's error when ctx ends first.
func (d *Dispatcher) Subscribe(ctx context.Context, sub Subscriber, streams []string, from *cursor.Position, aud []string) (cursor.Position, error) {
	if err := ctx.Err(); err != nil {
		return cursor.Position{}, err
	}
	reply := make(chan cursor.Position, 1)
	stopped, ok := d.hand(command{kind: cmdConnect, sub: sub, streams: slices.Clone(streams), from: from, aud: newAudience(aud), reply: reply})
	if !ok {
		return cursor.Position{}, ErrStopped
	}
	select {
	case pos := <-reply:
		return pos, nil
	case <-ctx.Done():
		d.Unsubscribe(sub) // handed over after the connect, so it undoes it
		return cursor.Position{}, ctx.Err()
	case <-stopped:
		return cursor.Position{}, ErrStopped
	}
}

// Unsubscribe forgets sub; it does not close it. It never blocks: the
// request is handed to the dispatcher goroutine, which takes it after
// whatever it is doing (a database read, say). Requests are taken in the
// order they were made, so an Unsubscribe after a Subscribe undoes it.
func (d *Dispatcher) Unsubscribe(sub Subscriber) {
	d.hand(command{kind: cmdDisconnect, sub: sub})
}

// hand queues cmd for the dispatcher goroutine without waiting for it. It
// returns the channel closed when the current run has stopped, and false
// when the dispatcher is not running (cmd is dropped: a stopped run has no
// subscribers left to forget).
func (d *Dispatcher) hand(cmd command) (<-chan struct{}, bool) {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil, false
	}
	d.cmds = append(d.cmds, cmd)
	stopped := d.Stopped()
	d.mu.Unlock()
	select {
	case d.cmdCh <- struct{}{}:
	default: // already signalled; the dispatcher takes every queued command at once
	}
	return stopped, true
}

// takeCommands returns the commands handed over since the last call.
func (d *Dispatcher) takeCommands() []command {
	d.mu.Lock()
	defer d.mu.Unlock()
	cmds := d.cmds
	d.cmds = nil
	return cmds
}
