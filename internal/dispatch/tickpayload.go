package dispatch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// A tick's notification payload (migrations/010_tick_parts.sql; the "t1"
// form of 008_tick_payload.sql is still read):
//
//	t2 <from> <to> <committed_at, Unix µs> <n>\n
//	t1 <prev> <new> <committed_at, Unix µs> <n>\n
//	n events, each: <seq> <id> <len stream> <len event> <len data> <-1 | k len_1 .. len_k>\n
//	                <stream><event><data><audience values>
//
// In t2, from and to are resume tokens ("seq": after every event of seq,
// "seq.id": after that event) and the note holds the events after from up
// to and including to; a tick's notes are contiguous. A t1 note is the
// whole tick: from after every event of prev, to after every event of new.
// n is -1 when the note left its events out. Lengths are in bytes. The
// decoded strings share the payload's memory: one allocation per
// notification, none per event beyond its audience slice.

// The versions of the payload this package reads.
const (
	tickPayloadV1 = "t1 "
	tickPayloadV2 = "t2 "
)

// minEventBytes is the fewest bytes an event takes in a payload: its line
// ("1 1 1 0 0 -1\n") and a stream of one byte. It bounds n before the
// events are read.
const minEventBytes = 14

// errPayload is wrapped by every parse error of a tick payload.
var errPayload = errors.New("malformed tick payload")

// tickNote is one notification of a tick.
type tickNote struct {
	// pid is the backend that sent the notification.
	pid uint32
	// from and to bound the note: it stands for exactly the events after
	// from up to and including to, in delivery order.
	from, to cursor.Position
	// events are those events in delivery order; complete is false (and
	// events nil) when the payload left them out.
	events   []event
	complete bool
}

// parseTickPayload decodes a tick's notification payload.
func parseTickPayload(payload string) (tickNote, error) {
	var note tickNote
	p := payloadParser{rest: payload}
	switch {
	case strings.HasPrefix(payload, tickPayloadV2):
		p.rest = payload[len(tickPayloadV2):]
		note.from, note.to = p.position(), p.position()
	case strings.HasPrefix(payload, tickPayloadV1):
		p.rest = payload[len(tickPayloadV1):]
		prev, next := p.int(), p.int()
		if prev < 0 {
			p.fail("head %d", prev)
		}
		note.from, note.to = cursor.After(prev), cursor.After(next)
	default:
		return tickNote{}, fmt.Errorf("%w: unknown version", errPayload)
	}
	at := time.UnixMicro(p.int())
	n := p.int()
	p.endLine()
	if p.err != nil {
		return tickNote{}, p.err
	}
	if !note.from.Less(note.to) {
		return tickNote{}, fmt.Errorf("%w: from %s to %s", errPayload, note.from, note.to)
	}
	if n == -1 {
		if err := p.end(); err != nil {
			return tickNote{}, err
		}
		return note, nil
	}
	if n < 1 || n > int64(len(p.rest)/minEventBytes) {
		return tickNote{}, fmt.Errorf("%w: %d events in %d bytes", errPayload, n, len(p.rest))
	}
	note.events = make([]event, n)
	last := note.from
	for i := range note.events {
		ev := &note.events[i]
		ev.pos = cursor.Position{Seq: p.int(), ID: p.int()}
		lStream, lType, lData, k := p.int(), p.int(), p.int(), p.int()
		var lAud []int64
		if k > 1000 || k < -1 || k == 0 {
			p.fail("audience of %d values", k)
		}
		for j := int64(0); j < k && p.err == nil; j++ {
			lAud = append(lAud, p.int())
		}
		p.endLine()
		if p.err != nil {
			return tickNote{}, p.err
		}
		ev.stream = p.bytes(lStream)
		ev.typ = p.bytes(lType)
		ev.data = p.bytes(lData)
		if k > 0 {
			ev.audience = make([]string, k)
			for j := range ev.audience {
				ev.audience[j] = p.bytes(lAud[j])
			}
		}
		ev.committed = at
		if p.err != nil {
			return tickNote{}, p.err
		}
		if !last.Less(ev.pos) || note.to.Less(ev.pos) || ev.pos.ID == cursor.EndOfCommit || ev.stream == "" {
			return tickNote{}, fmt.Errorf("%w: event %d at %s", errPayload, i, ev.pos)
		}
		last = ev.pos
	}
	// A note that ends within a commit ends at its last event: it cannot
	// stand for events it does not carry.
	if note.to.ID != cursor.EndOfCommit && last != note.to {
		return tickNote{}, fmt.Errorf("%w: ends at %s, its last event at %s", errPayload, note.to, last)
	}
	if err := p.end(); err != nil {
		return tickNote{}, err
	}
	note.complete = true
	return note, nil
}

// payloadParser reads a payload front to back; the first error sticks.
type payloadParser struct {
	rest string
	err  error
}

func (p *payloadParser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", errPayload, fmt.Sprintf(format, args...))
	}
}

// int reads a decimal integer and the one space or newline after it,
// leaving the newline for endLine.
func (p *payloadParser) int() int64 {
	if p.err != nil {
		return 0
	}
	i := strings.IndexAny(p.rest, " \n")
	if i < 0 {
		p.fail("truncated")
		return 0
	}
	v, err := strconv.ParseInt(p.rest[:i], 10, 64)
	if err != nil {
		p.fail("number %q", p.rest[:i])
		return 0
	}
	if p.rest[i] == ' ' {
		i++
	}
	p.rest = p.rest[i:]
	return v
}

// position reads a resume token and the space after it.
func (p *payloadParser) position() cursor.Position {
	if p.err != nil {
		return cursor.Position{}
	}
	token, rest, ok := strings.Cut(p.rest, " ")
	if !ok {
		p.fail("truncated")
		return cursor.Position{}
	}
	pos, err := cursor.Parse(token)
	if err != nil {
		p.fail("position %q", token)
		return cursor.Position{}
	}
	p.rest = rest
	return pos
}

func (p *payloadParser) endLine() {
	if p.err == nil && !strings.HasPrefix(p.rest, "\n") {
		p.fail("expected end of line")
	}
	if p.err == nil {
		p.rest = p.rest[1:]
	}
}

// bytes takes the next n bytes.
func (p *payloadParser) bytes(n int64) string {
	if p.err != nil {
		return ""
	}
	if n < 0 || n > int64(len(p.rest)) {
		p.fail("length %d past the end", n)
		return ""
	}
	s := p.rest[:n]
	p.rest = p.rest[n:]
	return s
}

func (p *payloadParser) end() error {
	if p.err == nil && p.rest != "" {
		p.fail("%d bytes after the end", len(p.rest))
	}
	return p.err
}
