// Package cursor defines positions in streamer's delivery order and the
// resume tokens that encode them.
//
// # Overview
//
// Every event has a [Position]: the commit sequence number of the
// transaction that inserted it (streamer.commits.seq, taken at COMMIT under a
// lock, so it follows commit order) and the event's own id (insertion order
// within that transaction). Positions order events totally; the order is a
// function of what is in the database, so it is the same for every
// subscriber, every replay and every server process.
//
// A token is the text form of a position, sent in the SSE id field and
// returned by clients in Last-Event-ID. Two forms are accepted:
//
//	"<seq>.<id>"  after the event at (seq, id): the id of every event frame.
//	"<seq>"       after every event of commit seq: what streamer.head() returns.
//
// Both are decimal ASCII without spaces, at most 39 bytes. A later format must
// start with a letter so that these two stay parseable forever: a token issued
// by this version is accepted by every later one.
//
// # Invariants
//
//   - Parse(p.String()) == p for every valid position.
//   - A position means "resume after": events at positions strictly greater
//     than it are delivered.
package cursor

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Position is a place in the delivery order: after the event (Seq, ID).
type Position struct {
	Seq int64 // commit sequence of the transaction
	ID  int64 // event id within it; EndOfCommit means "after all of Seq"
}

// EndOfCommit as a Position.ID stands after every event of the commit.
const EndOfCommit = math.MaxInt64

// Start is the position before every event.
var Start = Position{}

// ErrMalformed is wrapped by every error of Parse.
var ErrMalformed = errors.New("malformed resume token")

// After returns the position after every event of commit seq.
func After(seq int64) Position { return Position{Seq: seq, ID: EndOfCommit} }

// Less reports whether p comes before q in the delivery order.
func (p Position) Less(q Position) bool {
	if p.Seq != q.Seq {
		return p.Seq < q.Seq
	}
	return p.ID < q.ID
}

// String returns p's token.
func (p Position) String() string {
	if p.ID == EndOfCommit {
		return strconv.FormatInt(p.Seq, 10)
	}
	b := make([]byte, 0, 24)
	return string(p.Append(b))
}

// Append appends p's token to dst.
func (p Position) Append(dst []byte) []byte {
	dst = strconv.AppendInt(dst, p.Seq, 10)
	if p.ID == EndOfCommit {
		return dst
	}
	dst = append(dst, '.')
	return strconv.AppendInt(dst, p.ID, 10)
}

// Parse reads a token in either form.
func Parse(token string) (Position, error) {
	seqText, idText, hasID := strings.Cut(token, ".")
	seq, err := parseNumber(seqText)
	if err != nil {
		return Position{}, fmt.Errorf("%w %q: commit sequence: %w", ErrMalformed, token, err)
	}
	if !hasID {
		return After(seq), nil
	}
	id, err := parseNumber(idText)
	if err != nil {
		return Position{}, fmt.Errorf("%w %q: event id: %w", ErrMalformed, token, err)
	}
	return Position{Seq: seq, ID: id}, nil
}

// parseNumber accepts plain decimal digits only (no sign, no spaces), so that
// every accepted token has exactly one spelling up to leading zeros.
func parseNumber(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if len(s) > 19 {
		return 0, errors.New("too long")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("unexpected %q", s[i])
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return n, nil
}
