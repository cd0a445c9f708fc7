package cursor_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/cursor"
)

func TestParse(t *testing.T) {
	t.Parallel()

	// Tokens issued by released versions: these must parse forever.
	valid := []struct {
		token string
		want  cursor.Position
	}{
		{"0", cursor.After(0)},
		{"42", cursor.After(42)},
		{"42.7", cursor.Position{Seq: 42, ID: 7}},
		{"9223372036854775807.9223372036854775806", cursor.Position{Seq: 9223372036854775807, ID: 9223372036854775806}},
		{"0.0", cursor.Position{}},
	}
	for _, tc := range valid {
		t.Run(tc.token, func(t *testing.T) {
			t.Parallel()
			got, err := cursor.Parse(tc.token)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	for _, token := range []string{"", ".", "1.", ".1", "-1", "+1", "1.2.3", " 1", "1 ", "a", "1.x", "99999999999999999999", "1e3", "0x10"} {
		t.Run("malformed "+token, func(t *testing.T) {
			t.Parallel()
			_, err := cursor.Parse(token)
			require.ErrorIs(t, err, cursor.ErrMalformed)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []cursor.Position{{}, {Seq: 1, ID: 1}, cursor.After(5), {Seq: 3, ID: 99999}} {
		got, err := cursor.Parse(p.String())
		require.NoError(t, err)
		require.Equal(t, p, got)
		require.Equal(t, p.String(), string(p.Append(nil)))
	}
}

func TestLess(t *testing.T) {
	t.Parallel()
	require.True(t, cursor.Position{Seq: 1, ID: 9}.Less(cursor.Position{Seq: 2, ID: 1}))
	require.True(t, cursor.Position{Seq: 2, ID: 1}.Less(cursor.Position{Seq: 2, ID: 2}))
	require.True(t, cursor.Position{Seq: 2, ID: 2}.Less(cursor.After(2)))
	require.False(t, cursor.After(2).Less(cursor.After(2)))
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
