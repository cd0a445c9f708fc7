package dispatch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// A tick's notification payload (migrations/008_tick_payload.sql):
//
//	t1 <prev> <new> <committed_at, Unix µs> <n>\n
//	n events, each: <seq> <id> <len stream> <len event> <len data> <-1 | k len_1 .. len_k>\n
//	                <stream><event><data><audience values>
//
// n is -1 when the tick left its events out. Lengths are in bytes. The
// decoded strings share the payload's memory: one allocation per
// notification, none per event beyond its audience slice.

// tickPayloadPrefix starts every payload this version writes.
const tickPayloadPrefix = "t1 "

// errPayload is wrapped by every parse error of a tick payload.
var errPayload = errors.New("malformed tick payload")

// tickNote is one tick's notification.
type tickNote struct {
	// pid is the backend that sent the notification.
	pid uint32
	// prev and next are the heads before and after the tick: the tick
	// numbered exactly the commits with seq in (prev, next].
	prev, next int64
	// events are the tick's events in delivery order; complete is false
	// (and events nil) when the payload left them out.
	events   []event
	complete bool
}

// parseTickPayload decodes a tick's notification payload.
func parseTickPayload(payload string) (tickNote, error) {
	p := payloadParser{rest: payload}
	if !strings.HasPrefix(payload, tickPayloadPrefix) {
		return tickNote{}, fmt.Errorf("%w: unknown version", errPayload)
	}
	p.rest = payload[len(tickPayloadPrefix):]
	var note tickNote
	note.prev = p.int()
	note.next = p.int()
	at := time.UnixMicro(p.int())
	n := p.int()
	p.endLine()
	if p.err != nil {
		return tickNote{}, p.err
	}
	if note.next <= note.prev || note.prev < 0 {
		return tickNote{}, fmt.Errorf("%w: heads %d, %d", errPayload, note.prev, note.next)
	}
	if n == -1 {
		if err := p.end(); err != nil {
			return tickNote{}, err
		}
		return note, nil
	}
	if n < 1 || n > 200 {
		return tickNote{}, fmt.Errorf("%w: %d events", errPayload, n)
	}
	note.events = make([]event, n)
	last := cursor.After(note.prev)
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
		if !last.Less(ev.pos) || ev.pos.Seq > note.next || ev.stream == "" {
			return tickNote{}, fmt.Errorf("%w: event %d at %s", errPayload, i, ev.pos)
		}
		last = ev.pos
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
