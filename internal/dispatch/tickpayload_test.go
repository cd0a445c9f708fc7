package dispatch

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// toTicks puts the database of pool in the ticks mode, whatever mode the
// test databases are in: tick payloads exist only there.
func toTicks(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), "SELECT streamer.set_ordering('ticks')")
	require.NoError(t, err)
}

// helperT is what the helpers below need of a test: a *testing.T, or a
// *rapid.T inside a property.
type helperT interface {
	require.TestingT
	Helper()
}

// sent is a notification as the listener hands it over.
type sent struct {
	pid     uint32
	payload string
}

func (n sent) to(d *Dispatcher) { d.Notified(n.pid, n.payload) }

// tickPayload records a tick on one connection, made the leading
// sequencer's backend first (streamer.ordering.sequencer_pid, as a
// sequencer records it on taking the lock), and returns its notification.
func tickPayload(t helperT, pool *pgxpool.Pool) sent {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "UPDATE streamer.ordering SET sequencer_pid = pg_backend_pid()")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "LISTEN streamer")
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(ctx, "UNLISTEN *") }()
	var n *int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT streamer.tick()").Scan(&n))
	require.NotNil(t, n, "not in ticks mode")
	require.Positive(t, *n, "the tick numbered nothing")
	waitCtx, cancel := context.WithTimeout(ctx, testsignal.Timeout)
	defer cancel()
	note, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, conn.Conn().PgConn().PID(), note.PID)
	return sent{pid: note.PID, payload: note.Payload}
}

// tickAndParse records a tick (tickPayload) and decodes its notification,
// requiring what every note must say: the heads before and after the tick.
func tickAndParse(t helperT, pool *pgxpool.Pool, before int64) tickNote {
	t.Helper()
	payload := tickPayload(t, pool).payload
	require.Less(t, len(payload), 8000)
	note, err := parseTickPayload(payload)
	require.NoError(t, err)
	require.Equal(t, before, note.prev)
	require.Equal(t, head(t, pool), note.next)
	return note
}

// requireNoteIsRead: a note that left its events out has none; one that
// carries them holds exactly what a live read from before returns, and
// that read ends at the note's head.
func requireNoteIsRead(t helperT, pool *pgxpool.Pool, before int64, note tickNote) {
	t.Helper()
	if !note.complete {
		require.Nil(t, note.events)
		return
	}
	p, err := readPage(context.Background(), pool, cursor.After(before), nil, 1000, nil)
	require.NoError(t, err)
	require.False(t, p.full)
	require.Equal(t, cursor.After(note.next), p.next)
	require.Len(t, note.events, len(p.events))
	for i := range p.events {
		p.events[i].committed = p.events[i].committed.UTC()
		note.events[i].committed = note.events[i].committed.UTC()
	}
	require.Equal(t, p.events, note.events)
}

// head returns the seq of the head, as the dispatcher reads it.
func head(t helperT, pool *pgxpool.Pool) int64 {
	t.Helper()
	h, err := readHead(context.Background(), pool)
	require.NoError(t, err)
	return h.Seq
}

// TestTickPayloadMatchesRead: a tick's notification (written in SQL by
// streamer.tick()) decodes to exactly what a live read from the head before
// the tick returns: positions, streams, NULL and non-NULL types, data with
// newlines and multibyte characters, audiences, commit times; and it
// leaves the events out, keeping the heads, when they are too many or too
// large for a notification.
func TestTickPayloadMatchesRead(t *testing.T) {
	t.Parallel()
	big := func(n int) string { return strings.Repeat("é", n/2) }
	for _, tc := range []struct {
		name     string
		txs      []string // one transaction each
		complete bool
	}{
		{"assorted", []string{
			`INSERT INTO streamer.events (stream, event, data) VALUES ('a', 't', 'hello'), ('b:1', NULL, E'x yé\nz 3 4\n')`,
			`INSERT INTO streamer.events (stream, event, data, audience) VALUES ('c', 'e', '', '{u1,"ü ser",u1}')`,
			`INSERT INTO streamer.events (stream, data, audience) VALUES ('a', '-1', '{x}')`,
		}, true},
		{"200 events", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 150) g`,
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 50) g`,
		}, true},
		{"201 events", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 201) g`,
		}, false},
		{"6,000 bytes", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(6000) + `')`,
		}, true},
		{"8,000 bytes in all", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(4000) + `')`,
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(4000) + `')`,
		}, false},
		{"one of 10,000 bytes", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', 'small')`,
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(10000) + `')`,
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := pgtest.NewPool(t)
			toTicks(t, pool)
			// An earlier tick, so that prev is not 0.
			_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('a', 'before')")
			require.NoError(t, err)
			pgtest.Tick(t, pool)
			before := head(t, pool)
			for _, tx := range tc.txs {
				_, err := pool.Exec(ctx, tx)
				require.NoError(t, err)
			}

			note := tickAndParse(t, pool, before)
			require.Equal(t, tc.complete, note.complete)
			requireNoteIsRead(t, pool, before, note)
		})
	}
}

// TestParseTickPayloadRefuses: a payload that is not exactly what
// streamer.tick() writes is an error (the dispatcher then reads), never a
// partial note.
func TestParseTickPayloadRefuses(t *testing.T) {
	t.Parallel()
	const good = "t1 4 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1"
	_, err := parseTickPayload(good)
	require.NoError(t, err, "the base case must parse")
	for name, payload := range map[string]string{
		"empty":               "",
		"other version":       strings.Replace(good, "t1", "t2", 1),
		"no header end":       "t1 4 6 1700000000000000 2",
		"heads backwards":     strings.Replace(good, "t1 4 6", "t1 6 4", 1),
		"negative prev":       strings.Replace(good, "t1 4 6", "t1 -1 6", 1),
		"no events":           strings.Replace(good, " 2\n5", " 0\n5", 1),
		"more events than n":  strings.Replace(good, " 2\n5", " 1\n5", 1),
		"fewer events than n": strings.Replace(good, " 2\n5", " 3\n5", 1),
		"too many events":     strings.Replace(good, " 2\n5", " 201\n5", 1),
		"length past end":     strings.Replace(good, "1 2\nbeu1", "1 9\nbeu1", 1),
		"not a number":        strings.Replace(good, "5 10", "5 x", 1),
		"out of order":        strings.Replace(good, "6 11", "5 9", 1),
		"seq past next":       strings.Replace(good, "6 11", "7 11", 1),
		"seq at prev":         strings.Replace(good, "5 10", "4 10", 1),
		"empty stream":        strings.Replace(good, "5 10 1 0 2 -1\nahi", "5 10 0 0 3 -1\nahi", 1),
		"zero audience":       strings.Replace(good, "1 2\nbeu1", "0\nbeu1", 1),
		"trailing bytes":      good + "x",
		"left out, trailing":  "t1 4 6 1700000000000000 -1\nx",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			note, err := parseTickPayload(payload)
			require.ErrorIs(t, err, errPayload)
			require.Zero(t, note)
		})
	}
}

// TestDispatcherAppliesTickNotes: a dispatcher handed a tick's
// notification at its live head fans the tick out without reading; one
// handed a later tick's (it missed one) reads, and delivers each event
// once; a note it is already past changes nothing; with nobody
// subscribed a note moves the head without a read.
func TestDispatcherAppliesTickNotes(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	toTicks(t, b.pool)
	insert := func(data ...string) {
		t.Helper()
		for _, s := range data {
			_, err := b.pool.Exec(context.Background(), "INSERT INTO streamer.events (stream, data) VALUES ('room', $1)", s)
			require.NoError(t, err)
		}
	}

	// Nobody subscribed: the head moves to the tick's without a read.
	insert("unseen")
	p0 := tickPayload(t, b.pool)
	p0.to(d)
	require.Equal(t, LiveRead{HeadOnly: true, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	s := newFakeSub()
	from, err := d.Subscribe(context.Background(), s, []string{"room"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, cursor.After(head(t, b.pool)), from, "a subscriber from now starts after the notified tick")
	waitLive(t, b, s)

	// At the head: applied, no read.
	insert("a", "b")
	p1 := tickPayload(t, b.pool)
	p1.to(d)
	require.Equal(t, LiveRead{Events: 2, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "a", s.next(t))
	require.Equal(t, "b", s.next(t))

	// Already past it, then a missed tick: the later note is served by a
	// read, which delivers both ticks' events once each.
	p1.to(d)
	insert("c")
	tickPayload(t, b.pool)
	insert("d")
	p3 := tickPayload(t, b.pool)
	p3.to(d)
	got := b.sig.LiveRead.WaitOrTimeout(t)
	require.False(t, got.Notified, "a note not at the head is a read")
	require.Equal(t, 2, got.Events)
	require.Equal(t, "c", s.next(t))
	require.Equal(t, "d", s.next(t))

	// The same note again, and one the read covered: nothing more.
	p3.to(d)
	insert("e")
	p4 := tickPayload(t, b.pool)
	p4.to(d)
	require.Equal(t, LiveRead{Events: 1, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "e", s.next(t))
	b.sig.LiveRead.RequireEmpty(t)
	require.Empty(t, s.frames)
}

// subscribedInTicks returns a started dispatcher on a database in the
// ticks mode and a live subscriber of stream "room".
func subscribedInTicks(t *testing.T) (*Dispatcher, *bundle, *fakeSub) {
	t.Helper()
	d, b := setup(t, nil)
	toTicks(t, b.pool)
	return d, b, subscribe(t, d, b, "room")
}

// TestDispatcherNotesFallBack: what a note cannot serve is read: a tick
// that left its events out, a payload that does not parse, and more
// notes than the dispatcher keeps waiting.
func TestDispatcherNotesFallBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b, s := subscribedInTicks(t)

	_, err := b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) SELECT 'room', g::text FROM generate_series(1, 201) g")
	require.NoError(t, err)
	tickPayload(t, b.pool).to(d)
	got := b.sig.LiveRead.WaitOrTimeout(t)
	require.False(t, got.Notified, "a tick without its events is read")
	require.Equal(t, 201, got.Events)
	for i := 1; i <= 201; i++ {
		require.Equal(t, strconv.Itoa(i), s.next(t))
	}

	_, err = b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', 'x')")
	require.NoError(t, err)
	pgtest.Tick(t, b.pool)
	d.Notified(1, "t1 garbage")
	got = b.sig.LiveRead.WaitOrTimeout(t)
	require.False(t, got.Notified)
	require.Equal(t, "x", s.next(t))

	// More notes than it keeps while a read blocks: they are dropped for
	// one more read, after the blocked one.
	_, err = b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', 'y')")
	require.NoError(t, err)
	p := tickPayload(t, b.pool)
	release := lockCommits(t, b)
	d.Wake()
	blockedReader(t, b)
	for range maxNotes + 1 {
		p.to(d)
	}
	release()
	require.Equal(t, LiveRead{Events: 1, Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "y", s.next(t))
	require.Equal(t, LiveRead{Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t), "the dropped notes' read")
}

// FuzzTickPayload: no payload makes the parser panic, and every note it
// accepts keeps what applyNote relies on: heads in order, and when
// complete, 1 to 200 events at strictly increasing positions after prev
// and up to next, each on a named stream.
func FuzzTickPayload(f *testing.F) {
	f.Add("t1 4 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1")
	f.Add("t1 0 2 1796654892193285 3\n1 1 1 2 5 -1\nat1hello1 2 2 0 7 -1\nb0x yé\nz2 3 1 0 1 2 2 6\ncdu1üser2")
	f.Add("t1 2 3 1796654892200029 -1\n")
	f.Fuzz(func(t *testing.T, payload string) {
		note, err := parseTickPayload(payload)
		if err != nil {
			require.ErrorIs(t, err, errPayload)
			require.Zero(t, note)
			return
		}
		require.Less(t, note.prev, note.next)
		require.GreaterOrEqual(t, note.prev, int64(0))
		if !note.complete {
			require.Nil(t, note.events)
			return
		}
		require.NotEmpty(t, note.events)
		require.LessOrEqual(t, len(note.events), 200)
		last := cursor.After(note.prev)
		for _, ev := range note.events {
			require.True(t, last.Less(ev.pos))
			require.LessOrEqual(t, ev.pos.Seq, note.next)
			require.NotEmpty(t, ev.stream)
			last = ev.pos
		}
	})
}

// TestDispatcherRefusesForgedNotes: any session may NOTIFY on the channel,
// so a well-formed payload at the head from a backend that is not the
// leading sequencer's is not applied: its event is never delivered and the
// head does not move past real ones; the dispatcher reads instead.
func TestDispatcherRefusesForgedNotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b, s := subscribedInTicks(t)
	_, err := b.pool.Exec(ctx, "UPDATE streamer.ordering SET sequencer_pid = 0")
	require.NoError(t, err)

	forger, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer forger.Release()
	h := head(t, b.pool)
	forged := fmt.Sprintf("t1 %d %d %d 1\n%d 1 4 0 6 -1\nroomforged", h, h+1000, time.Now().UnixMicro(), h+1)
	_, err = parseTickPayload(forged)
	require.NoError(t, err, "the forgery must be well-formed")
	d.Notified(forger.Conn().PgConn().PID(), forged)
	require.Equal(t, forger.Conn().PgConn().PID(), b.sig.Untrusted.WaitOrTimeout(t))
	require.Equal(t, LiveRead{Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t), "read instead")

	_, err = b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', 'real')")
	require.NoError(t, err)
	tickPayload(t, b.pool).to(d)
	require.Equal(t, LiveRead{Events: 1, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "real", s.next(t))
	require.Empty(t, s.frames, "the forged event was delivered")
}

// TestTickPayloadMatchesReadRandom: the property of
// TestTickPayloadMatchesRead over generated ticks (pgregory.net/rapid): a
// few transactions of a few events each, with any stream names and event
// types the rules allow, any text as data (newlines, multibyte characters,
// lengths around the notification's limit) and audiences or none. Every
// tick's note has the right heads; a note with its events holds exactly
// what a read returns; and a note whose events are well within a
// notification carries them.
func TestTickPayloadMatchesReadRandom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	toTicks(t, pool)
	noNUL := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	// Data of a drawn number of characters: rapid's strings are mostly
	// short, and the limits to cross are in thousands of bytes.
	text := func(n int) *rapid.Generator[string] {
		return rapid.Map(rapid.StringOfN(rapid.Rune(), n, n, -1), noNUL)
	}
	streamName := rapid.StringMatching(`[A-Za-z0-9][A-Za-z0-9_.:/@=+-]{0,30}`)
	eventType := rapid.OneOf(rapid.Just(""), rapid.StringMatching(`[A-Za-z0-9_.:-]{1,20}`).
		Filter(func(s string) bool { return !strings.HasPrefix(s, "streamer.") }))
	audienceValue := rapid.Map(rapid.StringOfN(rapid.Rune(), 1, 12, -1), noNUL).
		Filter(func(s string) bool { return s != "" })
	audience := rapid.OneOf(rapid.Just([]string(nil)), rapid.SliceOfN(audienceValue, 1, 3))

	rapid.Check(t, func(rt *rapid.T) {
		before := head(rt, pool)
		events, bytes := 0, 0
		for range rapid.IntRange(1, 5).Draw(rt, "transactions") {
			tx, err := pool.Begin(ctx)
			require.NoError(rt, err)
			// A failed check (and rapid's shrinking makes many) must not
			// keep its connection: after Commit this does nothing.
			defer func() { _ = tx.Rollback(ctx) }()
			for range rapid.IntRange(1, 6).Draw(rt, "events") {
				stream, typ := streamName.Draw(rt, "stream"), eventType.Draw(rt, "type")
				length := rapid.SampledFrom([]int{0, 1, 30, 500, 2500}).Draw(rt, "length")
				data, aud := text(length).Draw(rt, "data"), audience.Draw(rt, "audience")
				var nullable *string
				if typ != "" {
					nullable = &typ
				}
				_, err := tx.Exec(ctx, "INSERT INTO streamer.events (stream, event, data, audience) VALUES ($1, $2, $3, $4)",
					stream, nullable, data, aud)
				require.NoError(rt, err)
				events++
				bytes += len(stream) + len(typ) + len(data) + 80
				for _, a := range aud {
					bytes += len(a) + 8
				}
			}
			require.NoError(rt, tx.Commit(ctx))
		}

		note := tickAndParse(rt, pool, before)
		if bytes < 7800 {
			require.True(rt, note.complete, "%d events of about %d bytes fit in a notification", events, bytes)
		}
		if note.complete {
			require.Len(rt, note.events, events)
		}
		requireNoteIsRead(rt, pool, before, note)
	})
}
