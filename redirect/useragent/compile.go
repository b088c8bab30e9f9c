package useragent

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
)

const (
	// maxExpansion bounds how many literals one pattern may expand to
	// ("S[eE][mM]rushBot" expands to 4).
	maxExpansion = 64
	// minFactorLen is the shortest literal accepted as the trigger of a
	// regexp: shorter ones would hit in most UAs and run the regexp often.
	minFactorLen = 3
)

// compiledPattern is what one pattern becomes: literals such that every UA
// matching the pattern contains one of them, and a regexp to run when one
// is found, or nil when containing one of them is the same as matching.
type compiledPattern struct {
	literals []string
	confirm  *regexp.Regexp
}

// compilePattern analyses a regexp in RE2 syntax. With foldCase, matching
// ignores ASCII case: the literals are lowercased, and the confirming
// regexp accepts both cases of every ASCII letter (and only those: (?i)
// would also fold K into the Kelvin sign). Without it, the literals keep
// their case and the regexp is expr itself.
func compilePattern(expr string, foldCase bool) (compiledPattern, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return compiledPattern{}, fmt.Errorf("cannot parse pattern %q: %w", expr, err)
	}
	re = re.Simplify()
	norm := func(lits []string) []string {
		if foldCase {
			for i := range lits {
				lits[i] = lowerASCII(lits[i])
			}
		}
		return dedupe(lits)
	}
	if lits, ok := expand(re); ok && minLen(lits) > 0 {
		return compiledPattern{literals: norm(lits)}, nil
	}
	lits := factor(re)
	if minLen(lits) < minFactorLen {
		return compiledPattern{}, fmt.Errorf("pattern %q has no required literal of %d bytes or more", expr, minFactorLen)
	}
	src := expr
	if foldCase {
		src = foldASCII(re).String()
	}
	confirm, err := regexp.Compile(src)
	if err != nil {
		return compiledPattern{}, fmt.Errorf("cannot compile pattern %q: %w", src, err)
	}
	return compiledPattern{literals: norm(lits), confirm: confirm}, nil
}

// expand returns the finite set of strings re matches, when
// there is one of at most maxExpansion strings and re has no zero-width
// assertions: then a text matches re exactly when it contains one of them.
func expand(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return []string{string(re.Rune)}, true
		}
		// The parser turns "[wW]get" into a case-folded "w" followed by
		// "get": spell out every case.
		out := []string{""}
		for _, r := range re.Rune {
			var orbit []string
			for f := r; ; {
				orbit = append(orbit, string(f))
				if f = unicode.SimpleFold(f); f == r {
					break
				}
			}
			if out = product(out, orbit); out == nil {
				return nil, false
			}
		}
		return out, true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1]-re.Rune[i] >= 2*maxExpansion {
				return nil, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				out = append(out, string(r))
			}
		}
		out = dedupe(out)
		return out, len(out) > 0 && len(out) <= maxExpansion
	case syntax.OpCapture:
		return expand(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := expand(re.Sub[0])
		if !ok {
			return nil, false
		}
		return dedupe(append(sub, "")), true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			lits, ok := expand(sub)
			if !ok {
				return nil, false
			}
			out = append(out, lits...)
		}
		out = dedupe(out)
		return out, len(out) <= maxExpansion
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			lits, ok := expand(sub)
			if !ok {
				return nil, false
			}
			if out = product(out, lits); out == nil {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// factor returns a set of literals one of which every match of
// re contains, choosing among the candidates the set whose shortest
// literal is longest, or nil when it finds none.
func factor(re *syntax.Regexp) []string {
	if lits, ok := expand(re); ok {
		if minLen(lits) == 0 {
			return nil
		}
		return lits
	}
	switch re.Op {
	case syntax.OpLiteral:
		// A case-folded literal with too many spellings: the automaton
		// ignores case anyway, and the regexp confirms.
		return []string{lowerASCII(string(re.Rune))}
	case syntax.OpCapture, syntax.OpPlus:
		return factor(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return factor(re.Sub[0])
		}
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			lits := factor(sub)
			if lits == nil {
				return nil
			}
			out = append(out, lits...)
		}
		return dedupe(out)
	case syntax.OpConcat:
		var best []string
		consider := func(lits []string) {
			if lits == nil || minLen(lits) == 0 {
				return
			}
			if best == nil || minLen(lits) > minLen(best) ||
				(minLen(lits) == minLen(best) && len(lits) < len(best)) {
				best = lits
			}
		}
		// A run of adjacent expandable parts is one required literal;
		// zero-width assertions consume no text and do not break a run.
		run := []string{""}
		for _, sub := range re.Sub {
			if zeroWidth(sub) {
				continue
			}
			if lits, ok := expand(sub); ok {
				if next := product(run, lits); next != nil {
					run = next
					continue
				}
				consider(run)
				run = lits
				continue
			}
			consider(run)
			run = []string{""}
			consider(factor(sub))
		}
		consider(run)
		return best
	}
	return nil
}

func zeroWidth(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	return false
}

// product returns every a+b, or nil when there would be more than
// maxExpansion of them.
func product(as, bs []string) []string {
	if len(as)*len(bs) > maxExpansion {
		return nil
	}
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a+b)
		}
	}
	return dedupe(out)
}

// foldASCII returns a copy of re in which every ASCII letter, in literals
// and in character classes, matches both its cases.
func foldASCII(re *syntax.Regexp) *syntax.Regexp {
	out := *re
	out.Flags &^= syntax.FoldCase
	switch re.Op {
	case syntax.OpLiteral:
		var parts []*syntax.Regexp
		var plain []rune
		flush := func() {
			if len(plain) > 0 {
				parts = append(parts, &syntax.Regexp{Op: syntax.OpLiteral, Flags: out.Flags, Rune: plain})
				plain = nil
			}
		}
		for _, r := range re.Rune {
			lo, up := asciiCases(r)
			if lo == up {
				plain = append(plain, r)
				continue
			}
			flush()
			parts = append(parts, &syntax.Regexp{Op: syntax.OpCharClass, Flags: out.Flags, Rune: []rune{up, up, lo, lo}})
		}
		flush()
		if len(parts) == 1 {
			return parts[0]
		}
		return &syntax.Regexp{Op: syntax.OpConcat, Flags: out.Flags, Sub: parts}
	case syntax.OpCharClass:
		out.Rune = foldClass(re.Rune)
		return &out
	}
	if len(re.Sub) > 0 {
		out.Sub = make([]*syntax.Regexp, len(re.Sub))
		for i, sub := range re.Sub {
			out.Sub[i] = foldASCII(sub)
		}
	}
	return &out
}

// foldClass makes a class of [lo, hi] rune pairs accept both cases of its
// ASCII letters, or neither. The parser has already turned a negated class
// into the ranges it accepts, so [^u] arrives holding U: a class that holds
// NUL is taken as negated and keeps a letter only if it holds both cases
// (as (?i)[^u] would); any other class gains the missing case.
func foldClass(ranges []rune) []rune {
	var ascii [128]bool
	var out []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		for r := lo; r <= min(hi, 127); r++ {
			ascii[r] = true
		}
		if hi >= 128 {
			out = append(out, max(lo, 128), hi)
		}
	}
	negated := len(ranges) > 0 && ranges[0] == 0
	for l := 'a'; l <= 'z'; l++ {
		u := l - 'a' + 'A'
		in := ascii[l] || ascii[u]
		if negated {
			in = ascii[l] && ascii[u]
		}
		ascii[l], ascii[u] = in, in
	}
	for r := rune(0); r < 128; r++ {
		if ascii[r] {
			out = append(out, r, r)
		}
	}
	return normalizeRanges(out)
}

// normalizeRanges sorts and merges [lo, hi] pairs.
func normalizeRanges(ranges []rune) []rune {
	type span struct{ lo, hi rune }
	spans := make([]span, 0, len(ranges)/2)
	for i := 0; i+1 < len(ranges); i += 2 {
		spans = append(spans, span{ranges[i], ranges[i+1]})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.lo - b.lo) })
	out := make([]rune, 0, len(ranges))
	for _, s := range spans {
		if n := len(out); n > 0 && s.lo <= out[n-1]+1 {
			out[n-1] = max(out[n-1], s.hi)
			continue
		}
		out = append(out, s.lo, s.hi)
	}
	return out
}

func asciiCases(r rune) (lower, upper rune) {
	switch {
	case 'a' <= r && r <= 'z':
		return r, r - 'a' + 'A'
	case 'A' <= r && r <= 'Z':
		return r - 'A' + 'a', r
	}
	return r, r
}

func lowerASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		b.WriteByte(lower[s[i]])
	}
	return b.String()
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// minLen returns the length of the shortest string in s, or 0 for none.
func minLen(s []string) int {
	if len(s) == 0 {
		return 0
	}
	n := len(s[0])
	for _, x := range s[1:] {
		n = min(n, len(x))
	}
	return n
}
