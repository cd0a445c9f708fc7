package batch

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// Event is one row for streamer.events.
type Event struct {
	Stream string // stream name
	Type   string // event type; "" stores NULL
	Data   string // payload, up to 1 MiB
}

// size is what an event counts against the batch and queue byte bounds.
func (e Event) size() int { return len(e.Stream) + len(e.Type) + len(e.Data) }

// MaxDataBytes is the largest data the database accepts (data_size_rule).
const MaxDataBytes = 1 << 20

// The database's rules, by CHECK constraint name (migrations/001_events.sql),
// with the field each one is about and the constraint's comment.
var rules = map[string]struct{ field, msg string }{
	"stream_name_rule":         {"stream", "stream name: 1-200 characters from A-Z a-z 0-9 _ . : / @ = + -, starting with a letter or digit"},
	"event_type_rule":          {"event", "event type: NULL, or 1-64 characters from A-Z a-z 0-9 _ . : -"},
	"event_type_reserved_rule": {"event", `event types starting with "streamer." are reserved for the server`},
	"data_size_rule":           {"data", "data: at most 1 MiB (1,048,576 bytes)"},
	// Not a CHECK constraint: PostgreSQL's text type cannot hold these, so
	// the database rejects them while encoding (SQLSTATE 22021).
	"data_text_rule": {"data", "data: valid UTF-8 text without NUL characters"},
}

// RuleError says why an event was refused: which event (Index, its position
// within the events submitted together, or -1 when the database refused a
// group without saying which), which field and which rule.
type RuleError struct {
	Index   int
	Field   string // "stream", "event" or "data"; "" when unknown
	Rule    string // the CHECK constraint's name, e.g. "stream_name_rule"
	Message string // what the rule requires
	Err     error  // the database's error when the database refused the row
}

func (e *RuleError) Error() string {
	msg := e.Rule + ": " + e.Message
	if e.Rule == "" {
		msg = e.Message
	}
	if e.Index >= 0 {
		msg = fmt.Sprintf("event %d: %s", e.Index, msg)
	}
	return msg
}

func (e *RuleError) Unwrap() error { return e.Err }

func newRuleError(index int, rule string) *RuleError {
	r := rules[rule]
	return &RuleError{Index: index, Field: r.field, Rule: rule, Message: r.msg}
}

// rejection turns the database's refusal of a row into a RuleError.
func rejection(err error) *RuleError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return &RuleError{Index: -1, Message: err.Error(), Err: err}
	}
	if r, ok := rules[pgErr.ConstraintName]; ok {
		return &RuleError{Index: -1, Field: r.field, Rule: pgErr.ConstraintName, Message: r.msg, Err: err}
	}
	if pgErr.Code == "22021" { // character_not_in_repertoire: NUL or bad UTF-8
		re := newRuleError(-1, "data_text_rule")
		re.Field, re.Err = "", err
		return re
	}
	return &RuleError{Index: -1, Rule: pgErr.ConstraintName, Message: pgErr.Message, Err: err}
}

var streamByte, typeByte [256]bool

func init() {
	for c := 0; c < 256; c++ {
		alnum := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		streamByte[c] = alnum || c == '_' || c == '.' || c == ':' || c == '/' || c == '@' || c == '=' || c == '+' || c == '-'
		typeByte[c] = alnum || c == '_' || c == '.' || c == ':' || c == '-'
	}
}

// Validate checks e against the database's rules, so that a bad event is
// refused before it can fail a batch. index is reported in the error.
func Validate(index int, e Event) *RuleError {
	if !validStream(e.Stream) {
		return newRuleError(index, "stream_name_rule")
	}
	if e.Type != "" {
		if len(e.Type) > 64 || !allOf(e.Type, &typeByte) {
			return newRuleError(index, "event_type_rule")
		}
		if len(e.Type) >= 9 && e.Type[:9] == "streamer." {
			return newRuleError(index, "event_type_reserved_rule")
		}
	}
	if len(e.Data) > MaxDataBytes {
		return newRuleError(index, "data_size_rule")
	}
	if !validText(e.Data) {
		return newRuleError(index, "data_text_rule")
	}
	return nil
}

func validStream(s string) bool {
	if len(s) == 0 || len(s) > 200 {
		return false
	}
	c := s[0]
	if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
		return false
	}
	return allOf(s, &streamByte)
}

func allOf(s string, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

func validText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}
