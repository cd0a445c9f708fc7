package batch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

var ruleCases = []struct {
	name  string
	event Event
	rule  string // "" when valid
}{
	{"valid", Event{Stream: "orders:42", Type: "order.paid", Data: `{"status":"paid"}`}, ""},
	{"valid without type", Event{Stream: "a", Data: ""}, ""},
	{"valid every stream character", Event{Stream: "0aZ_.:/@=+-", Data: "x\ny"}, ""},
	{"valid longest stream", Event{Stream: strings.Repeat("s", 200), Data: "x"}, ""},
	{"valid largest data", Event{Stream: "s", Data: strings.Repeat("x", MaxDataBytes)}, ""},
	{"valid unicode data", Event{Stream: "s", Data: "héllo ✓"}, ""},
	{"empty stream", Event{Stream: "", Data: "x"}, "stream_name_rule"},
	{"stream starts with punctuation", Event{Stream: "_a", Data: "x"}, "stream_name_rule"},
	{"stream with space", Event{Stream: "a b", Data: "x"}, "stream_name_rule"},
	{"stream too long", Event{Stream: strings.Repeat("s", 201), Data: "x"}, "stream_name_rule"},
	{"stream not ASCII", Event{Stream: "é", Data: "x"}, "stream_name_rule"},
	{"type with space", Event{Stream: "s", Type: "a b", Data: "x"}, "event_type_rule"},
	{"type too long", Event{Stream: "s", Type: strings.Repeat("t", 65), Data: "x"}, "event_type_rule"},
	{"reserved type", Event{Stream: "s", Type: "streamer.gap", Data: "x"}, "event_type_reserved_rule"},
	{"data too large", Event{Stream: "s", Data: strings.Repeat("x", MaxDataBytes+1)}, "data_size_rule"},
	{"data with NUL", Event{Stream: "s", Data: "a\x00b"}, "data_text_rule"},
	{"data not UTF-8", Event{Stream: "s", Data: "a\xffb"}, "data_text_rule"},
	{"valid audience", Event{Stream: "s", Data: "x", Audience: []string{"user:1", "team:7"}}, ""},
	{"valid largest audience", Event{Stream: "s", Data: "x", Audience: make1000("a")}, ""},
	{"valid awkward audience", Event{Stream: "s", Data: "x", Audience: []string{`"{,}\`, "NULL", " "}}, ""},
	{"empty audience", Event{Stream: "s", Data: "x", Audience: []string{}}, "audience_rule"},
	{"audience too large", Event{Stream: "s", Data: "x", Audience: append(make1000("a"), "b")}, "audience_rule"},
	{"empty audience value", Event{Stream: "s", Data: "x", Audience: []string{"a", ""}}, "audience_rule"},
}

// make1000 returns MaxAudience copies of v.
func make1000(v string) []string {
	out := make([]string, MaxAudience)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			re := Validate(3, tc.event)
			if tc.rule == "" {
				require.Nil(t, re)
				return
			}
			require.NotNil(t, re)
			require.Equal(t, tc.rule, re.Rule)
			require.Equal(t, 3, re.Index)
			require.NotEmpty(t, re.Field)
			require.Contains(t, re.Error(), tc.rule)
		})
	}
}

// TestValidateMatchesDatabase inserts each case with plain SQL, bypassing
// Validate, and checks that the database accepts and refuses the same rows,
// naming the same rule.
func TestValidateMatchesDatabase(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			var typ *string
			if tc.event.Type != "" {
				typ = &tc.event.Type
			}
			_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, event, data, audience) VALUES ($1, $2, $3, $4)",
				tc.event.Stream, typ, tc.event.Data, tc.event.Audience)
			if tc.rule == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			re := rejection(err)
			if tc.rule == "data_text_rule" {
				// Refused while encoding, by pgx or by the server.
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					require.Equal(t, "data_text_rule", re.Rule)
				}
				return
			}
			require.Equal(t, tc.rule, re.Rule, "database error: %v", err)
		})
	}
}

func TestValidateAudienceNamesTheValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		audience []string
		want     string
	}{
		{[]string{}, "0 values"},
		{[]string{"a", "", "c"}, "audience[1] is empty"},
		{[]string{"a\x00b"}, "audience[0] is not valid UTF-8"},
		{[]string{"ok", "\xff"}, "audience[1] is not valid UTF-8"},
	} {
		re := Validate(2, Event{Stream: "s", Data: "x", Audience: tc.audience})
		require.NotNil(t, re, "%q", tc.audience)
		require.Equal(t, "audience", re.Field)
		require.Equal(t, "audience_rule", re.Rule)
		require.Equal(t, 2, re.Index)
		require.Contains(t, re.Error(), tc.want)
	}
}
