package cursor_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// tokenForm is the test's own statement of the accepted spelling: one or
// two runs of at most 19 decimal digits joined by a dot.
var tokenForm = regexp.MustCompile(`^[0-9]{1,19}(\.[0-9]{1,19})?$`)

// FuzzParse checks the resume-token parser on any input: it never panics;
// it accepts exactly the tokens of tokenForm whose numbers fit an int64,
// refusing everything else with an error that wraps ErrMalformed; and an
// accepted token's Position prints as a token that parses back to the same
// Position and equals the input up to leading zeros. Seeds are in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		pos, err := cursor.Parse(token)
		if err != nil {
			require.True(t, errors.Is(err, cursor.ErrMalformed), "error %v does not wrap ErrMalformed", err)
			require.False(t, fits(token), "refused a well-formed token %q: %v", token, err)
			return
		}
		require.True(t, fits(token), "accepted %q", token)
		require.GreaterOrEqual(t, pos.Seq, int64(0))
		require.GreaterOrEqual(t, pos.ID, int64(0))

		printed := pos.String()
		require.Regexp(t, tokenForm, printed)
		again, err := cursor.Parse(printed)
		require.NoError(t, err)
		require.Equal(t, pos, again)
		require.Equal(t, canonical(token), printed)
		require.Equal(t, printed, string(pos.Append(nil)))
	})
}

// fits reports whether token has tokenForm and its numbers fit an int64.
func fits(token string) bool {
	if !tokenForm.MatchString(token) {
		return false
	}
	for _, part := range strings.Split(token, ".") {
		if _, err := strconv.ParseInt(part, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// canonical strips leading zeros from each number of a well-formed token;
// "<seq>.<MaxInt64>" means "after every event of seq" and prints as "<seq>".
func canonical(token string) string {
	parts := strings.Split(token, ".")
	for i, p := range parts {
		n, _ := strconv.ParseInt(p, 10, 64)
		parts[i] = strconv.FormatInt(n, 10)
	}
	if len(parts) == 2 && parts[1] == strconv.FormatInt(cursor.EndOfCommit, 10) {
		parts = parts[:1]
	}
	return strings.Join(parts, ".")
}
