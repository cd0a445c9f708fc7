package auth

import (
	"fmt"
	"strings"
)

// subPlaceholder in a pattern stands for the token's sub.
const subPlaceholder = "{sub}"

// maxPatternLen bounds a configured pattern; tokens' patterns are not
// compiled ahead and need no bound beyond the token's own size.
const maxPatternLen = 1024

// Pattern is a stream pattern: a stream name in which "*" matches any run of
// characters (also none) and "{sub}" stands for the token's sub. Everything
// else is literal, including a "*" inside the substituted sub.
type Pattern struct {
	raw string
	// segs are the pieces between stars; each piece is a run of literal
	// text and {sub} placeholders, kept as parts so that the sub is
	// substituted as literal text at match time.
	segs    [][]string
	usesSub bool
}

// ParsePattern compiles a pattern. Any string is a valid pattern; the error
// is for configured patterns that are empty or absurdly long.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty stream pattern")
	}
	if len(s) > maxPatternLen {
		return Pattern{}, fmt.Errorf("stream pattern longer than %d bytes", maxPatternLen)
	}
	return compilePattern(s), nil
}

func compilePattern(s string) Pattern {
	p := Pattern{raw: s}
	for _, seg := range strings.Split(s, "*") {
		var parts []string
		for {
			i := strings.Index(seg, subPlaceholder)
			if i < 0 {
				break
			}
			p.usesSub = true
			parts = append(parts, seg[:i], subPlaceholder)
			seg = seg[i+len(subPlaceholder):]
		}
		parts = append(parts, seg)
		p.segs = append(p.segs, parts)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether stream matches p for a token whose subject is sub
// ("" for none: a pattern using {sub} then matches nothing).
func (p Pattern) Match(stream, sub string) bool {
	if p.segs == nil {
		return false // the zero Pattern matches nothing
	}
	if p.usesSub && sub == "" {
		return false
	}
	expand := func(parts []string) string {
		if len(parts) == 1 {
			return parts[0]
		}
		var b strings.Builder
		for _, part := range parts {
			// compilePattern split every "{sub}" out, so a part equal to
			// it is the placeholder, never literal text.
			if part == subPlaceholder {
				b.WriteString(sub)
			} else {
				b.WriteString(part)
			}
		}
		return b.String()
	}
	first := expand(p.segs[0])
	if len(p.segs) == 1 {
		return stream == first
	}
	if !strings.HasPrefix(stream, first) {
		return false
	}
	rest := stream[len(first):]
	last := expand(p.segs[len(p.segs)-1])
	// Each middle piece is taken at its leftmost occurrence: with "*" as the
	// only wildcard, leftmost-first never rules out a match a later choice
	// would allow.
	for _, parts := range p.segs[1 : len(p.segs)-1] {
		mid := expand(parts)
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return strings.HasSuffix(rest, last)
}

// Patterns is a list of patterns; a stream matches the list when it matches
// any of them.
type Patterns []Pattern

// ParsePatterns compiles a comma-separated list (as in
// STREAMER_PUBLIC_STREAMS); blanks around commas are ignored.
func ParsePatterns(list string) (Patterns, error) {
	var ps Patterns
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", s, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether stream matches any pattern in ps for subject sub.
func (ps Patterns) Match(stream, sub string) bool {
	for _, p := range ps {
		if p.Match(stream, sub) {
			return true
		}
	}
	return false
}

// matchAny reports whether stream matches any of the raw patterns of a
// token's claim.
func matchAny(raw []string, stream, sub string) bool {
	for _, s := range raw {
		if compilePattern(s).Match(stream, sub) {
			return true
		}
	}
	return false
}
