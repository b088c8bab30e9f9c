package deploy

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// readYAML reads the subset of YAML that docker-compose.yml keeps to, so
// that the check needs no YAML module: block maps and lists by indentation
// of spaces, "- key: value" items, one-line or multi-line flow lists of
// scalars, plain, "double-quoted" and 'single-quoted' scalars, ">-" folded
// lines, and comments. A map is a yamlMap, a list []any, a scalar a string
// (numbers too), an empty value nil. Anything else (anchors, tags, flow
// maps, "|" blocks, tabs) is an error, never a silent misreading.
func readYAML(src string) (any, error) {
	var ls []yamlLine
	for i, raw := range strings.Split(src, "\n") {
		text := strings.TrimRight(raw, " \r")
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if strings.ContainsRune(text, '\t') {
			return nil, fmt.Errorf("line %d: cannot read a tab", i+1)
		}
		ls = append(ls, yamlLine{no: i + 1, indent: len(text) - len(trimmed), text: trimmed})
	}
	r := &yamlReader{lines: ls}
	if len(ls) == 0 {
		return nil, nil
	}
	v, err := r.block(ls[0].indent)
	if err == nil && r.i < len(ls) {
		err = r.errorf("unexpected indentation")
	}
	return v, err
}

// yamlMap keeps its keys in the file's order.
type yamlMap struct {
	keys   []string
	values map[string]any
}

func (m *yamlMap) get(key string) any { return m.values[key] }

type yamlLine struct {
	no, indent int
	text       string // without the indentation
}

type yamlReader struct {
	lines []yamlLine
	i     int
}

func (r *yamlReader) errorf(format string, args ...any) error {
	no := 0
	if r.i < len(r.lines) {
		no = r.lines[r.i].no
	} else if len(r.lines) > 0 {
		no = r.lines[len(r.lines)-1].no
	}
	return fmt.Errorf("line %d: %s", no, fmt.Sprintf(format, args...))
}

// block reads the map or list whose lines start at indent.
func (r *yamlReader) block(indent int) (any, error) {
	if isItem(r.lines[r.i].text) {
		return r.list(indent)
	}
	return r.mapping(indent)
}

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

func (r *yamlReader) mapping(indent int) (any, error) {
	m := &yamlMap{values: map[string]any{}}
	for r.i < len(r.lines) && r.lines[r.i].indent == indent && !isItem(r.lines[r.i].text) {
		key, rest, ok := splitKey(r.lines[r.i].text)
		if !ok {
			return nil, r.errorf("want key: value, got %q", r.lines[r.i].text)
		}
		if strings.HasPrefix(key, "<<") || strings.ContainsAny(key[:1], `"'&*!?{[`) {
			return nil, r.errorf("cannot read key %q", key)
		}
		if _, dup := m.values[key]; dup {
			return nil, r.errorf("key %q twice", key)
		}
		v, err := r.value(indent, rest)
		if err != nil {
			return nil, err
		}
		m.keys = append(m.keys, key)
		m.values[key] = v
	}
	if r.i < len(r.lines) && r.lines[r.i].indent > indent {
		return nil, r.errorf("unexpected indentation")
	}
	return m, nil
}

func (r *yamlReader) list(indent int) (any, error) {
	var l []any
	for r.i < len(r.lines) && r.lines[r.i].indent == indent && isItem(r.lines[r.i].text) {
		item := strings.TrimLeft(strings.TrimPrefix(r.lines[r.i].text, "-"), " ")
		if _, _, ok := splitKey(item); ok && !strings.ContainsAny(item[:1], `"'[`) {
			// "- key: value": a map whose keys line up with this one.
			r.lines[r.i].indent = len(r.lines[r.i].text) - len(item) + indent
			r.lines[r.i].text = item
			v, err := r.mapping(r.lines[r.i].indent)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			continue
		}
		v, err := r.value(indent, item)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
	}
	return l, nil
}

// value reads what follows "key:" or "-" on line r.i, and the lines that
// belong to it, leaving r.i at the next line.
func (r *yamlReader) value(indent int, rest string) (any, error) {
	r.i++
	switch {
	case rest == "":
		if r.i < len(r.lines) && r.lines[r.i].indent > indent {
			return r.block(r.lines[r.i].indent)
		}
		return nil, nil
	case rest == ">-":
		var parts []string
		for r.i < len(r.lines) && r.lines[r.i].indent > indent {
			parts = append(parts, r.lines[r.i].text)
			r.i++
		}
		return strings.Join(parts, " "), nil
	case rest[0] == '[':
		flow := rest
		for !flowClosed(flow) {
			if r.i >= len(r.lines) || r.lines[r.i].indent <= indent {
				return nil, r.errorf("unclosed flow list %q", flow)
			}
			flow += " " + r.lines[r.i].text
			r.i++
		}
		return readFlow(flow)
	}
	r.i--
	defer func() { r.i++ }()
	s, err := readScalar(rest)
	if err != nil {
		return nil, r.errorf("%s", err)
	}
	return s, nil
}

// splitKey splits "key: value" or "key:" at its first colon followed by a
// space or the end, outside quotes.
func splitKey(text string) (key, rest string, ok bool) {
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ':' && (i+1 == len(text) || text[i+1] == ' '):
			if i == 0 {
				return "", "", false
			}
			return text[:i], strings.TrimSpace(text[i+1:]), true
		case c == ' ' && i+1 < len(text) && text[i+1] == '#':
			return "", "", false
		}
	}
	return "", "", false
}

// flowClosed reports whether the brackets of flow, outside quotes, balance.
func flowClosed(flow string) bool {
	depth, quote := 0, byte(0)
	for i := 0; i < len(flow); i++ {
		c := flow[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[':
			depth++
		case c == ']':
			depth--
		}
	}
	return depth == 0
}

// readFlow reads "[a, "b", 'c']" followed at most by a comment.
func readFlow(flow string) ([]any, error) {
	var items []any
	var cur strings.Builder
	quote := byte(0)
	end := -1
	for i := 1; i < len(flow) && end < 0; i++ {
		c := flow[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' && i+1 < len(flow) {
				cur.WriteByte(c)
				i++
				c = flow[i]
			} else if c == quote {
				quote = 0
			}
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
			cur.WriteByte(c)
		case c == '[' || c == '{':
			return nil, fmt.Errorf("cannot read a nested flow in %q", flow)
		case c == ',' || c == ']':
			if s := strings.TrimSpace(cur.String()); s != "" {
				v, err := readScalar(s)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			} else if c == ',' {
				return nil, fmt.Errorf("empty item in %q", flow)
			}
			cur.Reset()
			if c == ']' {
				end = i
			}
		default:
			cur.WriteByte(c)
		}
	}
	if tail := strings.TrimSpace(flow[end+1:]); end < 0 || tail != "" && tail[0] != '#' {
		return nil, fmt.Errorf("cannot read flow list %q", flow)
	}
	return items, nil
}

func readScalar(s string) (string, error) {
	switch s[0] {
	case '"':
		// YAML's double-quoted escapes that a compose file needs are Go's.
		end := closingQuote(s)
		if end < 0 {
			return "", fmt.Errorf("unclosed quote in %q", s)
		}
		if err := trailingComment(s[end+1:]); err != nil {
			return "", err
		}
		return strconv.Unquote(s[:end+1])
	case '\'':
		end := 1
		for ; end < len(s); end++ {
			if s[end] == '\'' {
				if end+1 < len(s) && s[end+1] == '\'' {
					end++
					continue
				}
				break
			}
		}
		if end == len(s) {
			return "", fmt.Errorf("unclosed quote in %q", s)
		}
		if err := trailingComment(s[end+1:]); err != nil {
			return "", err
		}
		return strings.ReplaceAll(s[1:end], "''", "'"), nil
	case '&', '*', '!', '|', '>', '{', '%', '@', '`':
		return "", fmt.Errorf("cannot read %q", s)
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
}

func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func trailingComment(tail string) error {
	if tail = strings.TrimSpace(tail); tail != "" && tail[0] != '#' {
		return fmt.Errorf("unexpected %q after a quoted scalar", tail)
	}
	return nil
}

// plain turns a yamlMap into map[string]any, for comparisons.
func plain(v any) any {
	switch v := v.(type) {
	case *yamlMap:
		m := map[string]any{}
		for _, k := range v.keys {
			m[k] = plain(v.values[k])
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = plain(e)
		}
		return l
	}
	return v
}

func TestReadYAML(t *testing.T) {
	f := func(src string, want any) {
		t.Helper()
		got, err := readYAML(src)
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", src, err)
		}
		if !reflect.DeepEqual(plain(got), want) {
			t.Fatalf("unexpected value for %q; got %#v; want %#v", src, plain(got), want)
		}
	}
	f("a: 1\nb: x y # note\n", map[string]any{"a": "1", "b": "x y"})
	f("a:\n  b:\n    c: \"q: #\"\n  d:\n", map[string]any{"a": map[string]any{"b": map[string]any{"c": "q: #"}, "d": nil}})
	f("l:\n  - x\n  - 'it''s'\n  - \"8080:8080\"\n  - a:/b\n", map[string]any{"l": []any{"x", "it's", "8080:8080", "a:/b"}})
	f("l: [\"a\", b,\n     'c, d']  # x\n", map[string]any{"l": []any{"a", "b", "c, d"}})
	f("l:\n  - k: 1\n    m: 2\n  - n:\n      o: p\n", map[string]any{"l": []any{
		map[string]any{"k": "1", "m": "2"}, map[string]any{"n": map[string]any{"o": "p"}}}})
	f("c:\n  - >-\n    one two\n    three\n  - x\n", map[string]any{"c": []any{"one two three", "x"}})
	f("e: ${A:?set it, see README}\n", map[string]any{"e": "${A:?set it, see README}"})

	bad := func(src string) {
		t.Helper()
		if v, err := readYAML(src); err == nil {
			t.Fatalf("unexpected success for %q: %#v", src, plain(v))
		}
	}
	bad("a: &x 1\n")
	bad("a: *x\n")
	bad("<<: x\n")
	bad("a: |\n  x\n")
	bad("a: {b: c}\n")
	bad("a: [b, [c]]\n")
	bad("a: [b\n")
	bad("a: 1\n  b: 2\n")
	bad("a: 1\na: 2\n")
	bad("a:\n\tb: 1\n")
	bad("a: \"x\" y\n")
}
