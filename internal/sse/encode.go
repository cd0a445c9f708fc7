package sse

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// AppendEvent appends one event frame to dst and returns the extended slice.
//
// The frame is, in order:
//
//   - "id: <id>\n", omitted when id is empty;
//   - "event: <event>\n", omitted when event is empty;
//   - one "data: <line>\n" per line of data, where CRLF, a lone CR and a
//     lone LF each end a line. A data string with n line breaks therefore
//     gives exactly n+1 data lines: "" gives one empty data line, and "x\n"
//     gives "data: x" and "data: ";
//   - a blank line "\n", which makes the client dispatch the event.
//
// An EventSource joins the data lines with LF and strips the one final LF
// (WHATWG HTML, "event stream interpretation"), so the event.data it sees is
// exactly data with every CRLF and CR replaced by LF, including leading,
// trailing and consecutive line breaks. Because every line gets its own
// "data: " prefix and only LF is written, nothing in data can start another
// field or end the event early.
//
// id and event are single-line fields: if either contains CR or LF, only the
// part before the first line break is written, so they cannot inject fields
// either. The space after each colon is always written, so a value that
// itself starts with a space keeps it. (A client ignores an id that
// contains NUL; resume tokens are printable ASCII.)
func AppendEvent(dst []byte, id, event, data string) []byte {
	id, event = firstLine(id), firstLine(event)
	// One growth for the common single-line case; extra lines may grow again.
	dst = slices.Grow(dst, len(id)+len(event)+len(data)+len("id: \nevent: \ndata: \n\n"))
	if id != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, id...)
		dst = append(dst, '\n')
	}
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	dst = appendLines(dst, "data: ", data)
	return append(dst, '\n')
}

// AppendComment appends text as a comment: one ": <line>\n" per line of text,
// with line breaks split exactly as in [AppendEvent] (empty text gives one
// ": \n"). Clients ignore comment lines entirely; a comment neither starts
// nor ends an event, so no blank line follows it and a comment alone is a
// complete frame.
func AppendComment(dst []byte, text string) []byte {
	return appendLines(dst, ": ", text)
}

// AppendRetry appends "retry: <milliseconds>\n\n", which sets the client's
// reconnection delay. d is truncated to whole milliseconds; a negative d is
// written as 0. The blank line ends the frame; since it carries no data, the
// client dispatches no event for it.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, max(d.Milliseconds(), 0), 10)
	return append(dst, "\n\n"...)
}

// appendLines appends prefix+line+"\n" for every line of s, where CRLF, CR
// and LF each end a line; s with n line breaks gives n+1 lines. It scans
// with strings.IndexByte for CR and LF separately, remembering the next
// position of each, so the work stays linear in len(s).
func appendLines(dst []byte, prefix, s string) []byte {
	cr, lf := strings.IndexByte(s, '\r'), strings.IndexByte(s, '\n')
	start := 0
	for {
		end, next := len(s), -1
		switch {
		case cr >= 0 && (lf < 0 || cr < lf):
			end, next = cr, cr+1
			if lf == cr+1 {
				next = lf + 1
			}
		case lf >= 0:
			end, next = lf, lf+1
		}
		dst = append(dst, prefix...)
		dst = append(dst, s[start:end]...)
		dst = append(dst, '\n')
		if next < 0 {
			return dst
		}
		start = next
		if cr >= 0 && cr < start {
			cr = indexByteFrom(s, start, '\r')
		}
		if lf >= 0 && lf < start {
			lf = indexByteFrom(s, start, '\n')
		}
	}
}

func indexByteFrom(s string, from int, c byte) int {
	if i := strings.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

// firstLine returns s up to its first CR or LF.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// AppendID appends a frame that carries only an id: "id: <id>\n\n". A client
// sets its last event ID from it and, since no data line came, dispatches no
// event (WHATWG HTML, "event stream interpretation"). id is cut at its first
// line break as in [AppendEvent].
func AppendID(dst []byte, id string) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, firstLine(id)...)
	return append(dst, "\n\n"...)
}
