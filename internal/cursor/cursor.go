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
