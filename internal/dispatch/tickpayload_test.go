package dispatch

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/syncbuf"
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

// sentTick is a tick's notifications in the order they arrived.
type sentTick []sent

func (ts sentTick) to(d *Dispatcher) {
	for _, n := range ts {
		n.to(d)
	}
}

// tickPayload records a tick on one connection, made the leading
// sequencer's backend first (streamer.ordering.sequencer_pid, as a
// sequencer records it on taking the lock), and returns its notifications:
// those up to the one that ends at the new head.
func tickPayload(t helperT, pool *pgxpool.Pool) sentTick {
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
	end := cursor.After(head(t, pool))
	waitCtx, cancel := context.WithTimeout(ctx, testsignal.Timeout)
	defer cancel()
	var got sentTick
	for {
		note, err := conn.Conn().WaitForNotification(waitCtx)
		require.NoError(t, err, "after %d notifications", len(got))
		require.Equal(t, conn.Conn().PgConn().PID(), note.PID)
		got = append(got, sent{pid: note.PID, payload: note.Payload})
		parsed, err := parseTickPayload(note.Payload)
		require.NoError(t, err)
		if parsed.to == end {
			return got
		}
	}
}

// tickAndParse records a tick (tickPayload) and decodes its notifications,
// requiring what every tick's notes must say: each under NOTIFY's limit,
// the first starting after every event of before, each next one where the
// one before ended, the last at the new head, at most seventeen.
func tickAndParse(t helperT, pool *pgxpool.Pool, before int64) []tickNote {
	t.Helper()
	var notes []tickNote
	from := cursor.After(before)
	for _, n := range tickPayload(t, pool) {
		require.Less(t, len(n.payload), 8000)
		note, err := parseTickPayload(n.payload)
		require.NoError(t, err)
		require.Equal(t, from, note.from, "note %d starts where the one before ended", len(notes))
		from = note.to
		notes = append(notes, note)
	}
	require.Equal(t, cursor.After(head(t, pool)), from)
	require.LessOrEqual(t, len(notes), 17)
	return notes
}

// requireNotesAreRead: a tick's notes hold exactly what a live read from
// before returns, split at the notes' bounds; a note that left its events
// out has none, and only the last may.
func requireNotesAreRead(t helperT, pool *pgxpool.Pool, before int64, notes []tickNote) {
	t.Helper()
	p, err := readPage(context.Background(), pool, cursor.After(before), nil, 3000, nil)
	require.NoError(t, err)
	require.False(t, p.full)
	require.Equal(t, notes[len(notes)-1].to, p.next)
	read := p.events
	for i := range read {
		read[i].committed = read[i].committed.UTC()
	}
	for i, note := range notes {
		k := 0
		for k < len(read) && !note.to.Less(read[k].pos) {
			k++
		}
		if !note.complete {
			require.Equal(t, len(notes)-1, i, "only the last note leaves its events out")
			require.Nil(t, note.events)
			continue
		}
		for j := range note.events {
			note.events[j].committed = note.events[j].committed.UTC()
		}
		require.Equal(t, read[:k], note.events, "note %d", i)
		read = read[k:]
	}
}

// carried counts the events a tick's notes carry.
func carried(notes []tickNote) int {
	n := 0
	for _, note := range notes {
		n += len(note.events)
	}
	return n
}

// head returns the seq of the head, as the dispatcher reads it.
func head(t helperT, pool *pgxpool.Pool) int64 {
	t.Helper()
	h, err := readHead(context.Background(), pool)
	require.NoError(t, err)
	return h.Seq
}

// TestTickPayloadMatchesRead: a tick's notifications (written in SQL by
// streamer.tick()) decode to exactly what a live read from the head before
// the tick returns: positions, streams, NULL and non-NULL types, data with
// newlines and multibyte characters, audiences, commit times. Events that
// do not fit in one notification are split over several, within a commit
// too; what cannot be carried (an event too large for any notification,
// events past the 2,000th or past the sixteenth notification) is left to a
// last notification without events.
func TestTickPayloadMatchesRead(t *testing.T) {
	t.Parallel()
	big := func(n int) string { return strings.Repeat("é", n/2) }
	for _, tc := range []struct {
		name    string
		txs     []string // one transaction each
		notes   int
		carried int
	}{
		{"assorted", []string{
			`INSERT INTO streamer.events (stream, event, data) VALUES ('a', 't', 'hello'), ('b:1', NULL, E'x yé\nz 3 4\n')`,
			`INSERT INTO streamer.events (stream, event, data, audience) VALUES ('c', 'e', '', '{u1,"ü ser",u1}')`,
			`INSERT INTO streamer.events (stream, data, audience) VALUES ('a', '-1', '{x}')`,
		}, 1, 4},
		{"200 events", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 150) g`,
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 50) g`,
		}, 1, 200},
		{"1,000 events in one commit", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 1000) g`,
		}, 3, 1000},
		{"2,001 events", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 1001) g`,
			`INSERT INTO streamer.events (stream, data) SELECT 's' || g, g::text FROM generate_series(1, 1000) g`,
		}, 7, 2000},
		{"6,000 bytes", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(6000) + `')`,
		}, 1, 1},
		{"8,000 bytes in all", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(4000) + `')`,
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(4000) + `')`,
		}, 2, 2},
		{"one of 10,000 bytes", []string{
			`INSERT INTO streamer.events (stream, data) VALUES ('a', 'small')`,
			`INSERT INTO streamer.events (stream, data) VALUES ('a', '` + big(10000) + `'), ('a', 'after')`,
		}, 2, 1},
		{"past sixteen notifications", []string{
			`INSERT INTO streamer.events (stream, data) SELECT 'a', repeat('x', 1000) FROM generate_series(1, 200)`,
		}, 17, 112},
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

			notes := tickAndParse(t, pool, before)
			require.Equal(t, tc.notes, len(notes), "notifications")
			require.Equal(t, tc.carried, carried(notes), "events carried")
			requireNotesAreRead(t, pool, before, notes)
		})
	}
}

// TestParseTickPayloadRefuses: a payload that is not exactly what
// streamer.tick() writes (now, or as 008_tick_payload.sql did) is an
// error (the dispatcher then reads), never a partial note.
func TestParseTickPayloadRefuses(t *testing.T) {
	t.Parallel()
	const (
		v1 = "t1 4 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1"
		v2 = "t2 4.9 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1"
	)
	for _, good := range []string{v1, v2, "t2 4.9 6.11 1700000000000000 -1\n"} {
		_, err := parseTickPayload(good)
		require.NoError(t, err, "the base case must parse: %q", good)
	}
	for name, payload := range map[string]string{
		"empty":                "",
		"other version":        strings.Replace(v1, "t1", "t3", 1),
		"no header end":        "t1 4 6 1700000000000000 2",
		"heads backwards":      strings.Replace(v1, "t1 4 6", "t1 6 4", 1),
		"negative prev":        strings.Replace(v1, "t1 4 6", "t1 -1 6", 1),
		"no events":            strings.Replace(v1, " 2\n5", " 0\n5", 1),
		"more events than n":   strings.Replace(v1, " 2\n5", " 1\n5", 1),
		"fewer events than n":  strings.Replace(v1, " 2\n5", " 3\n5", 1),
		"too many events":      strings.Replace(v1, " 2\n5", " 201\n5", 1),
		"length past end":      strings.Replace(v1, "1 2\nbeu1", "1 9\nbeu1", 1),
		"not a number":         strings.Replace(v1, "5 10", "5 x", 1),
		"out of order":         strings.Replace(v1, "6 11", "5 9", 1),
		"seq past next":        strings.Replace(v1, "6 11", "7 11", 1),
		"seq at prev":          strings.Replace(v1, "5 10", "4 10", 1),
		"empty stream":         strings.Replace(v1, "5 10 1 0 2 -1\nahi", "5 10 0 0 3 -1\nahi", 1),
		"zero audience":        strings.Replace(v1, "1 2\nbeu1", "0\nbeu1", 1),
		"trailing bytes":       v1 + "x",
		"left out, trailing":   "t1 4 6 1700000000000000 -1\nx",
		"v2 from not a token":  strings.Replace(v2, "4.9", "4.x", 1),
		"v2 signed from":       strings.Replace(v2, "4.9", "-4", 1),
		"v2 from at to":        strings.Replace(v2, "4.9 6", "6 6", 1),
		"v2 from after to":     strings.Replace(v2, "4.9 6", "6 4.9", 1),
		"v2 no to":             "t2 4.9",
		"v2 event at from":     strings.Replace(v2, "5 10", "4 9", 1),
		"v2 event before from": strings.Replace(v2, "5 10", "4 8", 1),
		"v2 event past to":     strings.Replace(v2, "4.9 6", "4.9 6.10", 1),
		"v2 to past the last":  strings.Replace(v2, "4.9 6", "4.9 6.12", 1),
		"v2 event at no id":    strings.Replace(v2, "6 11", "6 9223372036854775807", 1),
		"v2 too many events":   strings.Replace(v2, " 2\n5", " 5\n5", 1),
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

// TestDispatcherNotesFallBack: what a note cannot serve is read: the rest
// of a tick its notes left out (after the part they carried is applied),
// a payload that does not parse, and more notes than the dispatcher keeps
// waiting.
func TestDispatcherNotesFallBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b, s := subscribedInTicks(t)

	large := strings.Repeat("x", 8000)
	_, err := b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', '1'), ('room', '2'), ('room', $1), ('room', '4')", large)
	require.NoError(t, err)
	notes := tickPayload(t, b.pool)
	require.Len(t, notes, 2)
	notes.to(d)
	require.Equal(t, LiveRead{Events: 2, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	got := b.sig.LiveRead.WaitOrTimeout(t)
	require.False(t, got.Notified, "the rest of the tick is read")
	require.Equal(t, 2, got.Events)
	for _, want := range []string{"1", "2", large, "4"} {
		require.Equal(t, want, s.next(t))
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
	overflowNotes(t, d, b, tickPayload(t, b.pool))
	require.Equal(t, LiveRead{Events: 1, Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "y", s.next(t))
	require.Equal(t, LiveRead{Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t), "the dropped notes' read")
}

// overflowNotes hands d one note more than it keeps waiting while its live
// read is blocked, then lets the read go on.
func overflowNotes(t *testing.T, d *Dispatcher, b *bundle, notes sentTick) {
	t.Helper()
	release := lockCommits(t, b)
	d.Wake()
	blockedReader(t, b)
	for range maxNotes + 1 {
		notes[0].to(d)
	}
	release()
}

// FuzzTickPayload: no payload makes the parser panic, and every note it
// accepts keeps what applyNote relies on: from before to, and when
// complete, at least one event, at strictly increasing positions after
// from and up to to, each on a named stream.
func FuzzTickPayload(f *testing.F) {
	f.Add("t1 4 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1")
	f.Add("t1 0 2 1796654892193285 3\n1 1 1 2 5 -1\nat1hello1 2 2 0 7 -1\nb0x yé\nz2 3 1 0 1 2 2 6\ncdu1üser2")
	f.Add("t1 2 3 1796654892200029 -1\n")
	f.Add("t2 4.9 6 1700000000000000 2\n5 10 1 0 2 -1\nahi6 11 1 1 0 1 2\nbeu1")
	f.Add("t2 2 3.7 1796654892200029 1\n3 7 1 0 1 -1\nax")
	f.Add("t2 3.7 3 1796654892200029 -1\n")
	f.Fuzz(func(t *testing.T, payload string) {
		note, err := parseTickPayload(payload)
		if err != nil {
			require.ErrorIs(t, err, errPayload)
			require.Zero(t, note)
			return
		}
		require.True(t, note.from.Less(note.to))
		if !note.complete {
			require.Nil(t, note.events)
			return
		}
		require.NotEmpty(t, note.events)
		require.LessOrEqual(t, len(note.events), len(payload)/minEventBytes)
		if note.to.ID != cursor.EndOfCommit {
			require.Equal(t, note.to, note.events[len(note.events)-1].pos)
		}
		last := note.from
		for _, ev := range note.events {
			require.True(t, last.Less(ev.pos))
			require.False(t, note.to.Less(ev.pos))
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
// tick's notes are contiguous from the head before it to the head after;
// together they hold exactly what a read returns; and when the events fit
// in sixteen notifications (each at least 7,850 bytes less the largest
// event's) they carry all of them.
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
		events, bytes, largest := 0, 0, 0
		for range rapid.IntRange(1, 5).Draw(rt, "transactions") {
			tx, err := pool.Begin(ctx)
			require.NoError(rt, err)
			// A failed check (and rapid's shrinking makes many) must not
			// keep its connection: after Commit this does nothing.
			defer func() { _ = tx.Rollback(ctx) }()
			for range rapid.IntRange(1, 6).Draw(rt, "events") {
				stream, typ := streamName.Draw(rt, "stream"), eventType.Draw(rt, "type")
				length := rapid.SampledFrom([]int{0, 1, 30, 500, 1500, 2500}).Draw(rt, "length")
				data, aud := text(length).Draw(rt, "data"), audience.Draw(rt, "audience")
				var nullable *string
				if typ != "" {
					nullable = &typ
				}
				_, err := tx.Exec(ctx, "INSERT INTO streamer.events (stream, event, data, audience) VALUES ($1, $2, $3, $4)",
					stream, nullable, data, aud)
				require.NoError(rt, err)
				events++
				size := len(stream) + len(typ) + len(data) + 80
				for _, a := range aud {
					size += len(a) + 8
				}
				bytes += size
				largest = max(largest, size)
			}
			require.NoError(rt, tx.Commit(ctx))
		}

		notes := tickAndParse(rt, pool, before)
		// Each notification takes at least 7,850 bytes less the largest
		// event's, and there are sixteen.
		if largest < 7800 && bytes < 16*(7850-largest) {
			require.Equal(rt, events, carried(notes), "%d events of about %d bytes (the largest %d) fit", events, bytes, largest)
		}
		requireNotesAreRead(rt, pool, before, notes)
	})
}

// TestDispatcherAppliesTickParts: a tick whose events take several
// notifications, split within one commit, is fanned out from them without
// a read, each event once and in order; when one of them is missed, the
// next one is not at the head, so the rest is read, and still each event
// is delivered once.
func TestDispatcherAppliesTickParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b, s := subscribedInTicks(t)
	publish := func(n int) {
		t.Helper()
		_, err := b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) SELECT 'room', g::text FROM generate_series(1, $1::int) g", n)
		require.NoError(t, err)
	}
	requireDelivered := func(n int) {
		t.Helper()
		for i := 1; i <= n; i++ {
			require.Equal(t, strconv.Itoa(i), s.next(t))
		}
	}

	publish(1000)
	notes := tickPayload(t, b.pool)
	require.Greater(t, len(notes), 2)
	notes.to(d)
	events := 0
	for range notes {
		got := b.sig.LiveRead.WaitOrTimeout(t)
		require.True(t, got.Notified, "applied, not read")
		events += got.Events
	}
	require.Equal(t, 1000, events)
	requireDelivered(1000)

	publish(1000)
	notes = tickPayload(t, b.pool)
	require.Greater(t, len(notes), 2)
	notes[0].to(d)
	require.True(t, b.sig.LiveRead.WaitOrTimeout(t).Notified)
	notes[2:].to(d)
	got := b.sig.LiveRead.WaitOrTimeout(t)
	require.False(t, got.Notified, "a note after a missed one is read")
	requireDelivered(1000)
	b.sig.LiveRead.RequireEmpty(t)
	require.Empty(t, s.frames)
}

// TestNotesNotUnderstoodLoggedOnce: a server that does not understand the
// notifications (one older than the payload's version, while the database
// is upgraded first) reads instead of each, counts each, and warns once a
// minute, not once per notification.
func TestNotesNotUnderstoodLoggedOnce(t *testing.T) {
	t.Parallel()
	var log syncbuf.Buffer
	m := &recMetrics{}
	d, _ := setup(t, func(c *Config) {
		c.Logger = zerolog.New(&log)
		c.Metrics = m
	})
	for i := range 50 {
		d.Notified(1, fmt.Sprintf("t9 %d", i))
	}
	require.Equal(t, 50, m.snapshot().notes[metrics.NoteMalformed])
	require.Equal(t, 1, strings.Count(log.String(), "notification not understood"), "the log:\n%s", log.String())
	require.NotContains(t, log.String(), "t9 ", "the payload is not logged")
}

// TestDispatcherTrustsNoReusedPID: a dispatcher trusts the PID it last
// read from streamer.ordering.sequencer_pid. Once that backend is gone its
// PID may be any session's. A new sequencer's announcement
// (sequencer.Announcement, sent as it records itself), or a Wake (the
// listener's after it reconnects, when it may have missed the
// announcement), makes the dispatcher read the record again before it
// trusts another note, so a forged note from the old PID is read instead
// of applied.
func TestDispatcherTrustsNoReusedPID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		told  func(d *Dispatcher, newPID uint32)
		reads bool // the telling itself makes a read
	}{
		{"announced", func(d *Dispatcher, newPID uint32) { d.Notified(newPID, sequencer.Announcement) }, false},
		{"woken", func(d *Dispatcher, _ uint32) { d.Wake() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d, b, s := subscribedInTicks(t)
			const oldPID, newPID = 4242, 4343 // the dead sequencer's (now a forger's) and its successor's
			tickFrom := func(pid uint32, data string) {
				t.Helper()
				_, err := b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', $1)", data)
				require.NoError(t, err)
				notes := tickPayload(t, b.pool) // records its own backend: record pid instead
				_, err = b.pool.Exec(ctx, "UPDATE streamer.ordering SET sequencer_pid = $1", int32(pid))
				require.NoError(t, err)
				for _, n := range notes {
					d.Notified(pid, n.payload)
				}
				require.Equal(t, LiveRead{Events: 1, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t),
					"the tick's notes applied (a read first: an announcement taken for a wake, or the forged note read twice)")
				require.Equal(t, data, s.next(t))
			}
			tickFrom(oldPID, "first") // trusted: oldPID is the one read

			// The failover: the successor records itself.
			_, err := b.pool.Exec(ctx, "UPDATE streamer.ordering SET sequencer_pid = $1", int32(newPID))
			require.NoError(t, err)
			tc.told(d, newPID)
			if tc.reads {
				require.Equal(t, LiveRead{Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t), "the wake's read")
			}

			h := head(t, b.pool)
			forged := fmt.Sprintf("t1 %d %d %d 1\n%d 1 4 0 6 -1\nroomforged", h, h+1000, time.Now().UnixMicro(), h+1)
			d.Notified(oldPID, forged)
			require.Equal(t, uint32(oldPID), b.sig.Untrusted.WaitOrTimeout(t))
			require.Equal(t, LiveRead{Streams: 1}, b.sig.LiveRead.WaitOrTimeout(t), "read instead")

			tickFrom(newPID, "second")
			require.Empty(t, s.frames, "the forged event was delivered")
		})
	}
}
