package useragent

import (
	"fmt"
	"slices"
)

// The matcher is an Aho–Corasick automaton compiled to a full DFA over 32
// byte classes: the UA is read once, one table load per byte, whatever the
// number of patterns. The classes are the 26 letters (either case, so
// matching ignores ASCII case), the digits, space, '/', '-', '.', and one
// class for every other byte: a row of the table is one 64-byte cache line.
//
// Only the first maxPrefix bytes of a literal are in the automaton. Reaching
// the end of such a prefix is a candidate that a check confirms by
// comparing the bytes of the UA at that place when the literal is longer,
// is case-sensitive, or has a byte whose class it shares with others (a
// digit, '(', '_'…). Short prefixes keep the table small and let scan split
// the UA into interleaved lanes that overlap by only maxPrefix-1 bytes.
//
// States are numbered so that every state with an output comes after every
// state without one: the scan loop tests one comparison per byte and looks
// at outputs only on a hit.

const maxPrefix = 12

// Output bits of a state: the pattern kinds a hit decides.
const (
	maskPreview uint8 = 1 << iota
	maskInApp
	maskBot    // the crawler list: an in-app marker outweighs it
	maskRobot  // our own robot patterns: outweigh an in-app marker
	maskEngine // a browser engine's token (engineTokens)
)

// output is what reaching a state reveals.
type output struct {
	mask uint8 // maskPreview, maskInApp, maskBot, maskRobot, maskEngine
	// confirm has bit i set when regexp i must be run to decide; see
	// classifier.confirm.
	confirm uint64
	// checks[checkFrom:checkTo] index the checks of the literals whose
	// prefix ends here.
	checkFrom, checkTo uint32
}

// check confirms a candidate: the UA must hold lit (ignoring ASCII case)
// or, for case-sensitive literals, one of spellings, starting prefix bytes
// before the place the automaton reached.
type check struct {
	lit       string   // lowercase
	spellings []string // nil: ignore case
	notAfter  string   // lowercase; must not come just before lit
	prefix    int
	mask      uint8
	confirm   uint64
}

type automaton struct {
	trans    []uint16 // state<<classBits | class → next state
	firstOut uint32   // states ≥ firstOut have an output
	outs     []output // outs[state-firstOut]
	checkIdx []uint32 // ranged by output.checkFrom/To, index checks
	checks   []check
	states   int
}

// entry is one literal to find and what finding it means.
type entry struct {
	lit       string   // lowercase
	spellings []string // the exact spellings of a case-sensitive literal
	notAfter  string   // lowercase; must not come just before lit
	mask      uint8
	confirm   uint64
}

const (
	classBits = 5
	classes   = 1 << classBits
)

// classKind maps a byte to its class (low byte) and its byteKind (high
// byte): one load per byte for both.
var classKind = func() (t [256]uint16) {
	for i := range t {
		var c uint16 // every byte not listed below
		switch b := lower[i]; {
		case 'a' <= b && b <= 'z':
			c = uint16(b-'a') + 1
		case '0' <= b && b <= '9':
			c = 27
		case b == ' ':
			c = 28
		case b == '/':
			c = 29
		case b == '-':
			c = 30
		case b == '.':
			c = 31
		}
		t[i] = c | uint16(byteKind[i])<<8
	}
	return t
}()

// exactClass reports whether b is the only lowercase byte of its class.
func exactClass(b byte) bool {
	return 'a' <= b && b <= 'z' || b == ' ' || b == '/' || b == '-' || b == '.'
}

// lower maps ASCII upper case to lower case and every other byte to itself.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i - 'A' + 'a')
		}
	}
	return t
}()

func buildAutomaton(entries []entry) (*automaton, error) {
	a := &automaton{}

	for _, e := range entries {
		if e.lit == "" {
			return nil, fmt.Errorf("empty literal")
		}
		if e.lit != lowerASCII(e.lit) {
			panic("BUG: literal not lowercased: " + e.lit)
		}
	}

	// Trie of the prefixes. A literal that fits and ignores case sets its
	// node's output directly; any other gets a check there.
	var (
		child  = []int32{}  // node*classes + class → node, -1 for none
		outs   = []output{} // by node; check* unused until the end
		checks = [][]uint32{}
	)
	newNode := func() int32 {
		for range classes {
			child = append(child, -1)
		}
		outs = append(outs, output{})
		checks = append(checks, nil)
		return int32(len(outs) - 1)
	}
	newNode() // the root, 0
	checkOf := map[string]uint32{}
	for _, e := range entries {
		n := int32(0)
		p := min(len(e.lit), maxPrefix)
		for i := 0; i < p; i++ {
			c := int32(uint8(classKind[e.lit[i]]))
			next := child[n*int32(classes)+c]
			if next < 0 {
				next = newNode()
				child[n*int32(classes)+c] = next
			}
			n = next
		}
		exact := p == len(e.lit) && e.spellings == nil && e.notAfter == ""
		for i := 0; i < p; i++ {
			exact = exact && exactClass(e.lit[i])
		}
		if exact {
			outs[n].mask |= e.mask
			outs[n].confirm |= e.confirm
			continue
		}
		key := fmt.Sprintf("%t/%d/%d/%q/%s", e.spellings != nil, e.mask, e.confirm, e.notAfter, e.lit)
		i, ok := checkOf[key]
		if !ok {
			i = uint32(len(a.checks))
			checkOf[key] = i
			a.checks = append(a.checks, check{lit: e.lit, notAfter: e.notAfter, prefix: p, mask: e.mask, confirm: e.confirm})
			checks[n] = append(checks[n], i)
		}
		if e.spellings != nil {
			a.checks[i].spellings = dedupe(append(a.checks[i].spellings, e.spellings...))
		}
	}
	nodes := len(outs)
	if nodes > 1<<16 {
		return nil, fmt.Errorf("%d automaton states; more than 65536 need wider transitions", nodes)
	}

	// Breadth-first: failure links, inherited outputs and the full
	// transition function (delta), which replaces the trie's missing edges
	// by the failure node's edge.
	delta := make([]int32, nodes*classes)
	fail := make([]int32, nodes)
	order := make([]int32, 0, nodes)
	for c := range classes {
		if v := child[c]; v >= 0 {
			delta[c] = v
			order = append(order, v)
		}
	}
	for i := 0; i < len(order); i++ {
		u := order[i]
		f := fail[u]
		outs[u].mask |= outs[f].mask
		outs[u].confirm |= outs[f].confirm
		checks[u] = append(checks[u], checks[f]...)
		for c := range classes {
			if v := child[int(u)*classes+c]; v >= 0 {
				delta[int(u)*classes+c] = v
				fail[v] = delta[int(f)*classes+c]
				order = append(order, v)
			} else {
				delta[int(u)*classes+c] = delta[int(f)*classes+c]
			}
		}
	}

	// Number the states without output first, each group breadth-first:
	// the shallow states, where most bytes leave the automaton, then share
	// cache lines and pages.
	number := make([]uint16, nodes)
	next := 0
	bfs := append([]int32{0}, order...)
	for pass := 0; pass < 2; pass++ {
		for _, u := range bfs {
			hasOut := outs[u] != output{} || len(checks[u]) > 0
			if hasOut == (pass == 1) {
				number[u] = uint16(next)
				next++
			}
		}
		if pass == 0 {
			a.firstOut = uint32(next)
		}
	}
	if number[0] != 0 {
		panic("BUG: the root has an output")
	}
	a.trans = make([]uint16, nodes<<classBits)
	a.outs = make([]output, nodes-int(a.firstOut))
	for u := 0; u < nodes; u++ {
		row := int(number[u]) << classBits
		for c := range classes {
			a.trans[row+c] = number[delta[u*classes+c]]
		}
		if n := uint32(number[u]); n >= a.firstOut {
			o := outs[u]
			o.checkFrom = uint32(len(a.checkIdx))
			a.checkIdx = append(a.checkIdx, slices.Compact(slices.Sorted(slices.Values(checks[u])))...)
			o.checkTo = uint32(len(a.checkIdx))
			a.outs[n-a.firstOut] = o
		}
	}
	a.states = nodes
	return a, nil
}

// runChecks returns what the checks of o find for a prefix ending at
// ua[end-1].
func (a *automaton) runChecks(ua []byte, end int, o *output) (mask uint8, confirm uint64) {
	for _, i := range a.checkIdx[o.checkFrom:o.checkTo] {
		c := &a.checks[i]
		start := end - c.prefix
		if start < 0 || start+len(c.lit) > len(ua) {
			continue
		}
		if k := len(c.notAfter); k > 0 && start >= k && equalFoldASCII(ua[start-k:start], c.notAfter) {
			continue
		}
		if got := ua[start : start+len(c.lit)]; c.spellings == nil && equalFoldASCII(got, c.lit) || c.spellings != nil && spelled(got, c.spellings) {
			mask |= c.mask
			confirm |= c.confirm
		}
	}
	return mask, confirm
}

func spelled(b []byte, spellings []string) bool {
	for _, s := range spellings {
		if string(b) == s {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether b lowercased (ASCII) is low.
func equalFoldASCII(b []byte, low string) bool {
	if len(b) != len(low) {
		return false
	}
	for i := range len(b) {
		if lower[b[i]] != low[i] {
			return false
		}
	}
	return true
}
