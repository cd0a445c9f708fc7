package rules_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/rules"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testTimeout bounds each test's database work.
const testTimeout = time.Minute

// inputs are the strings both rules are tried on: hand-picked edges, every
// character up to U+00FF alone, first and last, lengths around the bounds,
// and random strings over an alphabet of allowed and refused characters.
func inputs() []string {
	in := []string{
		"", "a", "Z", "0", "9", "_", "-", ".", "_a", "-a", ".a", ":a", "/a", "@a", "=a", "+a",
		"a b", "a\tb", "a\nb", "a*b", "a%b", "a'b", `a\b`, "a,b", "a;b", "a#b", "a~b", "a$",
		"orders:42", "user/7@host=x+y-z", "0aZ_.:/@=+-", "a.b:c_d-e",
		"é", "aé", "a✓", "ａ", // not ASCII: refused by both rules
		"streamer", "streamer.", "streamer.gap", "streamerx", "streamer_gap", "Streamer.gap",
		"STREAMER.gap", "streamer:gap", "xstreamer.gap", "streamer.a b", "streamer." + strings.Repeat("x", 60),
	}
	for _, n := range []int{rules.MaxEventTypeLen - 1, rules.MaxEventTypeLen, rules.MaxEventTypeLen + 1,
		rules.MaxStreamLen - 1, rules.MaxStreamLen, rules.MaxStreamLen + 1} {
		in = append(in, strings.Repeat("s", n), "9"+strings.Repeat("-", n-1), strings.Repeat("é", n))
	}
	for r := rune(1); r <= 0xff; r++ { // NUL is not text in PostgreSQL
		c := string(r)
		in = append(in, c, "a"+c, c+"a")
	}
	alphabet := []rune("aZ09_.:/@=+- *é\n%'\\,")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]rune, rng.IntN(70))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		in = append(in, string(b))
	}
	return in
}

// TestRulesMatchDatabase inserts every input as a stream name and as an
// event type, and requires the database's CHECK constraints to accept and
// refuse exactly what the Go rules do, naming a rule the Go rules say is
// broken.
func TestRulesMatchDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tx, err := pgtest.NewPool(t).Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()

	// refused inserts one row in a savepoint and returns the name of the
	// constraint that refused it, or "".
	refused := func(stream string, event *string) string {
		t.Helper()
		sp, err := tx.Begin(ctx)
		require.NoError(t, err)
		_, err = sp.Exec(ctx, "INSERT INTO streamer.events (stream, event, data) VALUES ($1, $2, 'x')", stream, event)
		require.NoError(t, sp.Rollback(ctx))
		if err == nil {
			return ""
		}
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%v", err)
		require.Equal(t, "23514", pgErr.Code, "check_violation: %v", err)
		return pgErr.ConstraintName
	}

	var checked int
	for _, s := range inputs() {
		want := map[bool]string{true: "", false: "stream_name_rule"}[rules.Stream(s)]
		require.Equal(t, want, refused(s, nil), "stream %q", s)

		broken := map[string]bool{
			"event_type_rule":          !rules.EventType(s),
			"event_type_reserved_rule": rules.ReservedEventType(s),
		}
		got := refused("s", &s)
		if !broken["event_type_rule"] && !broken["event_type_reserved_rule"] {
			require.Empty(t, got, "event type %q: the Go rules accept it", s)
		} else {
			require.True(t, broken[got], "event type %q: refused by %q, the Go rules break %v", s, got, broken)
		}
		checked++
	}
	require.Greater(t, checked, 1000)
}

// TestRuleTextsMatchDatabase requires each rule's text to be its
// constraint's comment, and the data bound to be the database's.
func TestRuleTextsMatchDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pool := pgtest.NewPool(t)

	rows, err := pool.Query(ctx, `
		SELECT conname, coalesce(obj_description(oid, 'pg_constraint'), '')
		FROM pg_constraint WHERE conrelid = 'streamer.events'::regclass AND contype = 'c'`)
	require.NoError(t, err)
	comments := map[string]string{}
	for rows.Next() {
		var name, comment string
		require.NoError(t, rows.Scan(&name, &comment))
		comments[name] = comment
	}
	require.NoError(t, rows.Err())
	require.Equal(t, rules.StreamText, comments["stream_name_rule"])
	require.Equal(t, rules.EventTypeText, comments["event_type_rule"])
	require.Equal(t, rules.ReservedText, comments["event_type_reserved_rule"])
	require.Equal(t, rules.DataSizeText, comments["data_size_rule"])

	insert := func(data string) error {
		_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('s', $1)", data)
		return err
	}
	require.NoError(t, insert(strings.Repeat("x", rules.MaxDataBytes)))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, insert(strings.Repeat("x", rules.MaxDataBytes+1)), &pgErr)
	require.Equal(t, "data_size_rule", pgErr.ConstraintName)
}

func BenchmarkStream(b *testing.B) {
	name := "orders:" + strings.Repeat("x", 100)
	for b.Loop() {
		if !rules.Stream(name) {
			b.Fatal("refused")
		}
	}
}
