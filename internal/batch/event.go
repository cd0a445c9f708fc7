package batch

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/streamer-dev/streamer/internal/rules"
)

// Event is one row for streamer.events.
type Event struct {
	Stream string // stream name
	Type   string // event type; "" stores NULL
	Data   string // payload, up to 1 MiB
	// Audience restricts who may see the event: nil stores NULL (every
	// subscriber of the stream); otherwise 1-1000 non-empty values, and
	// only a connection whose token's sub or streamer.audience holds one
	// of them sees it.
	Audience []string
}

// size is what an event counts against the batch and queue byte bounds.
func (e Event) size() int {
	n := len(e.Stream) + len(e.Type) + len(e.Data)
	for _, a := range e.Audience {
		n += len(a)
	}
	return n
}

// MaxAudience is the most values an event's audience may hold
// (audience_rule).
const MaxAudience = 1000

// audienceText is audience_rule's comment (migrations/004_audience.sql).
const audienceText = "audience: NULL, or a one-dimensional array of 1-1000 non-empty, non-NULL values"

// MaxDataBytes is the largest data the database accepts (data_size_rule).
const MaxDataBytes = rules.MaxDataBytes

// The database's rules, by CHECK constraint name (migrations/001_events.sql),
// with the field each one is about and the constraint's comment.
var dbRules = map[string]struct{ field, msg string }{
	"stream_name_rule":         {"stream", rules.StreamText},
	"event_type_rule":          {"event", rules.EventTypeText},
	"event_type_reserved_rule": {"event", rules.ReservedText},
	"data_size_rule":           {"data", rules.DataSizeText},
	"audience_rule":            {"audience", audienceText},
	// Not a CHECK constraint: PostgreSQL's text type cannot hold these, so
	// the database rejects them while encoding (SQLSTATE 22021).
	"data_text_rule": {"data", "data: valid UTF-8 text without NUL characters"},
}

// RuleError says why an event was refused: which event (Index, its position
// within the events submitted together, or -1 when the database refused a
// group without saying which), which field and which rule.
type RuleError struct {
	Index   int
	Field   string // "stream", "event", "data" or "audience"; "" when unknown
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
	r := dbRules[rule]
	return &RuleError{Index: index, Field: r.field, Rule: rule, Message: r.msg}
}

// rejection turns the database's refusal of a row into a RuleError.
func rejection(err error) *RuleError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return &RuleError{Index: -1, Message: err.Error(), Err: err}
	}
	if r, ok := dbRules[pgErr.ConstraintName]; ok {
		return &RuleError{Index: -1, Field: r.field, Rule: pgErr.ConstraintName, Message: r.msg, Err: err}
	}
	if pgErr.Code == "22021" { // character_not_in_repertoire: NUL or bad UTF-8
		re := newRuleError(-1, "data_text_rule")
		re.Field, re.Err = "", err
		return re
	}
	return &RuleError{Index: -1, Rule: pgErr.ConstraintName, Message: pgErr.Message, Err: err}
}

// Validate checks e against the database's rules, so that a bad event is
// refused before it can fail a batch. index is reported in the error.
func Validate(index int, e Event) *RuleError {
	if !rules.Stream(e.Stream) {
		return newRuleError(index, "stream_name_rule")
	}
	if e.Type != "" {
		if !rules.EventType(e.Type) {
			return newRuleError(index, "event_type_rule")
		}
		if rules.ReservedEventType(e.Type) {
			return newRuleError(index, "event_type_reserved_rule")
		}
	}
	if len(e.Data) > MaxDataBytes {
		return newRuleError(index, "data_size_rule")
	}
	if !validText(e.Data) {
		return newRuleError(index, "data_text_rule")
	}
	return validateAudience(index, e.Audience)
}

// validateAudience checks an event's audience against audience_rule, and
// each value as text PostgreSQL can hold; the message names the value.
func validateAudience(index int, audience []string) *RuleError {
	if audience == nil {
		return nil
	}
	if len(audience) == 0 || len(audience) > MaxAudience {
		re := newRuleError(index, "audience_rule")
		re.Message = fmt.Sprintf("%d values; %s", len(audience), audienceText)
		return re
	}
	for i, a := range audience {
		var why string
		switch {
		case a == "":
			why = "is empty"
		case !validText(a):
			why = "is not valid UTF-8 text without NUL characters"
		default:
			continue
		}
		re := newRuleError(index, "audience_rule")
		re.Message = fmt.Sprintf("audience[%d] %s; %s", i, why, audienceText)
		return re
	}
	return nil
}

func validText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}
