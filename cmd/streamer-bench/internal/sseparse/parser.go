// Package sseparse decodes the body of an HTTP/1.1 response that carries a
// Server-Sent Events stream, incrementally, one read at a time, as the load
// tool's client connections need: no allocation once its buffers have grown.
//
// # Invariants
//
//   - Lines and chunk boundaries may fall anywhere between two Feed calls;
//     the events reported are the same as for the whole body at once.
//   - OnEvent's slices are valid only during the call.
package sseparse

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrEndOfBody is returned by Parser.Feed after the last chunk of a
// chunked body: the server ended the response.
var ErrEndOfBody = errors.New("end of response body")

// Chunked-transfer decoder states.
const (
	csSize   = iota // reading the hexadecimal chunk size
	csExt           // skipping a chunk extension (or the CR) up to LF
	csData          // reading chunk data
	csDataCR        // expecting the CRLF after the data
	csDataLF        // expecting the LF of that CRLF
	csEnd           // the zero-size chunk was read
)

// Parser decodes an HTTP/1.1 response body carrying a Server-Sent Events
// stream, incrementally, one read at a time: the chunked transfer coding when
// Chunked is set, then the SSE line format (CRLF, CR and LF end a line). It
// calls OnEvent for every dispatched event, and OnComment (when set) for
// every comment line; the slices are only valid during
// the call. It never allocates once its buffers have grown to the largest
// line and event seen.
type Parser struct {
	Chunked   bool
	OnEvent   func(id, typ, data []byte)
	OnComment func()

	cstate    int
	chunkLeft int
	size      int

	line    []byte // a line split across reads
	skipLF  bool   // the last line ended with CR: skip an LF right after it
	id      []byte // last event id (persists across events, as in EventSource)
	typ     []byte
	data    []byte
	hasData bool
}

// Feed decodes the next bytes of the body.
func (p *Parser) Feed(b []byte) error {
	if !p.Chunked {
		p.lines(b)
		return nil
	}
	for len(b) > 0 {
		switch p.cstate {
		case csSize:
			c := b[0]
			b = b[1:]
			switch {
			case '0' <= c && c <= '9':
				p.size = p.size<<4 | int(c-'0')
			case 'a' <= c && c <= 'f':
				p.size = p.size<<4 | int(c-'a'+10)
			case 'A' <= c && c <= 'F':
				p.size = p.size<<4 | int(c-'A'+10)
			case c == '\r' || c == ';' || c == ' ' || c == '\t':
				p.cstate = csExt
			case c == '\n':
				p.endSize()
			default:
				return fmt.Errorf("chunked body: bad size byte %q", c)
			}
			if p.size > 1<<30 {
				return errors.New("chunked body: chunk size over 1 GiB")
			}
		case csExt:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return nil
			}
			b = b[i+1:]
			p.endSize()
		case csData:
			n := min(len(b), p.chunkLeft)
			p.lines(b[:n])
			b = b[n:]
			if p.chunkLeft -= n; p.chunkLeft == 0 {
				p.cstate = csDataCR
			}
		case csDataCR, csDataLF:
			c := b[0]
			b = b[1:]
			switch {
			case c == '\r' && p.cstate == csDataCR:
				p.cstate = csDataLF
			case c == '\n':
				p.cstate = csSize
			default:
				return fmt.Errorf("chunked body: %q after chunk data, want CRLF", c)
			}
		case csEnd:
			return ErrEndOfBody
		}
	}
	if p.cstate == csEnd {
		return ErrEndOfBody
	}
	return nil
}

func (p *Parser) endSize() {
	if p.size == 0 {
		p.cstate = csEnd
		return
	}
	p.chunkLeft, p.size, p.cstate = p.size, 0, csData
}

// lines splits body bytes into lines.
func (p *Parser) lines(b []byte) {
	for len(b) > 0 {
		if p.skipLF {
			p.skipLF = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		end := bytes.IndexByte(b, '\n')
		limit := end
		if limit < 0 {
			limit = len(b)
		}
		if cr := bytes.IndexByte(b[:limit], '\r'); cr >= 0 {
			end = cr
			p.skipLF = true
		}
		if end < 0 {
			p.line = append(p.line, b...)
			return
		}
		line := b[:end]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		b = b[end+1:]
		p.field(line)
		p.line = p.line[:0]
	}
}

// field interprets one line, as the EventSource algorithm does.
func (p *Parser) field(line []byte) {
	if len(line) == 0 {
		if p.hasData {
			p.OnEvent(p.id, p.typ, p.data)
		}
		p.typ, p.data, p.hasData = p.typ[:0], p.data[:0], false
		return
	}
	if line[0] == ':' {
		if p.OnComment != nil {
			p.OnComment()
		}
		return
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id = append(p.id[:0], value...)
		}
	case "event":
		p.typ = append(p.typ[:0], value...)
	}
}
