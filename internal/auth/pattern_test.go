package auth

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, stream, sub string
		want                 bool
	}{
		{"orders:42", "orders:42", "", true},
		{"orders:42", "orders:420", "", false},
		{"orders:*", "orders:42", "", true},
		{"orders:*", "orders:", "", true},
		{"orders:*", "orders", "", false},
		{"orders:*", "xorders:1", "", false},
		{"*", "anything", "", true},
		{"*:42", "orders:42", "", true},
		{"*:42", "orders:421", "", false},
		{"a*b*c", "abc", "", true},
		{"a*b*c", "aXbYc", "", true},
		{"a*b*c", "aXcYb", "", false},
		{"a*b*b", "abb", "", true},
		{"a*b*b", "ab", "", false},
		{"a**b", "ab", "", true},
		{"user:{sub}", "user:alice", "alice", true},
		{"user:{sub}", "user:bob", "alice", false},
		{"user:{sub}", "user:", "", false},
		{"user:{sub}", "user:{sub}", "", false},
		{"user:{sub}", "user:alice", "", false},
		{"user:{sub}:*", "user:alice:inbox", "alice", true},
		{"{sub}/{sub}", "a/a", "a", true},
		{"{sub}/{sub}", "a/b", "a", false},
		{"user:{sub}", "user:anything", "*", false}, // the sub is literal
		{"user:{sub}", "user:*", "*", true},
		{"user:{SUB}", "user:{SUB}", "alice", true}, // only "{sub}" is special
		{"user:{sub", "user:{sub", "alice", true},
		{"", "", "", true},
	} {
		t.Run(tc.pattern+"~"+tc.stream, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, compilePattern(tc.pattern).Match(tc.stream, tc.sub))
			require.Equal(t, tc.want, referenceMatch(tc.pattern, tc.stream, tc.sub))
		})
	}
	require.False(t, Pattern{}.Match("", ""), "the zero Pattern matches nothing")
}

func TestParsePatterns(t *testing.T) {
	t.Parallel()
	ps, err := ParsePatterns(" news , public:*,,user:{sub} ")
	require.NoError(t, err)
	require.Len(t, ps, 3)
	require.Equal(t, "public:*", ps[1].String())
	require.True(t, ps.Match("public:1", ""))
	require.False(t, ps.Match("user:a", ""))
	require.True(t, ps.Match("user:a", "a"))

	ps, err = ParsePatterns("")
	require.NoError(t, err)
	require.False(t, ps.Match("x", ""), "no patterns: nothing is public")

	_, err = ParsePatterns("a," + strings.Repeat("x", maxPatternLen+1))
	require.ErrorContains(t, err, "longer than")
	_, err = ParsePattern("")
	require.Error(t, err)
}

// referenceMatch is an independent statement of the pattern rule: quote
// everything, then let each "*" become ".*" and each "{sub}" the quoted sub.
func referenceMatch(pattern, stream, sub string) bool {
	if strings.Contains(pattern, subPlaceholder) && sub == "" {
		return false
	}
	var re strings.Builder
	re.WriteString(`^`)
	for i, seg := range strings.Split(pattern, "*") {
		if i > 0 {
			re.WriteString(`.*`)
		}
		re.WriteString(strings.ReplaceAll(regexp.QuoteMeta(seg), regexp.QuoteMeta(subPlaceholder), regexp.QuoteMeta(sub)))
	}
	re.WriteString(`$`)
	return regexp.MustCompile("(?s)" + re.String()).MatchString(stream)
}

func FuzzPatternMatch(f *testing.F) {
	for _, s := range [][3]string{
		{"orders:*", "orders:42", ""},
		{"user:{sub}", "user:alice", "alice"},
		{"user:{sub}:*", "user:a:b", "a"},
		{"a*b*b", "abb", ""},
		{"*{sub}*", "x*y", "*"},
		{"{sub}", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pattern, stream, sub string) {
		if len(pattern) > 256 || len(stream) > 256 || len(sub) > 64 {
			return // the regexp reference is slow on long inputs; the rule is not
		}
		if !utf8.ValidString(pattern) || !utf8.ValidString(stream) || !utf8.ValidString(sub) {
			return // the reference cannot compile invalid UTF-8; Match is byte-wise
		}
		// QuoteMeta's output of "{sub}" contains "\{sub\}": a sub that
		// itself holds regexp syntax is quoted, so the reference is exact.
		got := compilePattern(pattern).Match(stream, sub)
		want := referenceMatch(pattern, stream, sub)
		if got != want {
			t.Fatalf("Match(%q, %q, sub %q) = %v, reference says %v", pattern, stream, sub, got, want)
		}
	})
}
