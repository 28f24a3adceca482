package config

import (
	"cmp"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// An Error is one problem in a configuration, with where it is.
type Error struct {
	File string // the configuration file as named to Load or Parse; "" if the value came from elsewhere
	Line int    // 1-based line in File; 0 if unknown
	Key  string // the key, as "timeouts.idle" or "rule[2].nets"; "" if unknown
	Err  error
}

// Error returns "FILE:LINE: key: problem", leaving out the parts that are
// unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the problem.
func (e *Error) Unwrap() error { return e.Err }

// positions maps key paths to the line they are written on. A path joins
// keys with "." and counts array elements and [[rule]] tables from 0:
// "listen.1", "rule.2.nets.0", "groups.admins".
type positions struct {
	lines map[string]int
	keys  []keyLine // key-value keys and table headers in document order
}

type keyLine struct {
	path string
	line int
}

// index records the line of every key, table header and string, number or
// inline-table value in doc. On a syntax error the index stops there and
// ok is false.
func index(doc []byte) (pos *positions, ok bool) {
	pos = &positions{lines: make(map[string]int)}
	var p unstable.Parser
	p.Reset(doc)
	prefix := ""
	counts := make(map[string]int)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, line := keyOf(&p, e.Key())
			prefix = name
			if e.Kind == unstable.ArrayTable {
				prefix = name + "." + strconv.Itoa(counts[name])
				counts[name]++
			}
			pos.add(prefix, line, true)
		case unstable.KeyValue:
			pos.keyValue(&p, prefix, e)
		}
	}
	return pos, p.Error() == nil
}

// keyOf joins a dotted key and returns the line of its first part.
func keyOf(p *unstable.Parser, it unstable.Iterator) (string, int) {
	var parts []string
	line := 0
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = lineOf(p, n)
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), line
}

func lineOf(p *unstable.Parser, n *unstable.Node) int {
	if n.Raw.Length == 0 {
		return 0
	}
	return p.Shape(n.Raw).Start.Line
}

func (pos *positions) add(path string, line int, isKey bool) {
	if line == 0 {
		return
	}
	if _, dup := pos.lines[path]; !dup {
		pos.lines[path] = line
	}
	if isKey {
		pos.keys = append(pos.keys, keyLine{path, line})
	}
}

func (pos *positions) keyValue(p *unstable.Parser, prefix string, kv *unstable.Node) {
	name, line := keyOf(p, kv.Key())
	path := join(prefix, name)
	pos.add(path, line, true)
	pos.value(p, path, kv.Value())
}

func (pos *positions) value(p *unstable.Parser, path string, v *unstable.Node) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			elem := path + "." + strconv.Itoa(i)
			pos.add(elem, lineOf(p, c), false)
			pos.value(p, elem, c)
			i++
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				pos.keyValue(p, path, c)
			}
		}
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// line returns the line of path, or of the nearest enclosing key that was
// written in the file, or 0.
func (pos *positions) line(path string) int {
	if pos == nil {
		return 0
	}
	for path != "" {
		if l, ok := pos.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// keyBefore returns the first key on the last line, at or before line,
// that has keys. For a value on its key's line that is the key; for an
// element of an array spread over lines it is the array's key.
func (pos *positions) keyBefore(line int) string {
	i := sort.Search(len(pos.keys), func(i int) bool { return pos.keys[i].line > line })
	if i == 0 {
		return ""
	}
	i--
	for i > 0 && pos.keys[i-1].line == pos.keys[i].line {
		i--
	}
	return pos.keys[i].path
}

// display turns a path into the name an operator reads: element numbers
// are dropped, except a rule's or an upstream's, which counts from 1 as
// people count [[rule]] tables ("rule.2.nets.0" → "rule[3].nets").
func display(path string) string {
	parts := strings.Split(path, ".")
	var b strings.Builder
	for i := 0; i < len(parts); i++ {
		if _, err := strconv.Atoi(parts[i]); err == nil || parts[i] == "" {
			continue // element number
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(parts[i])
		if i == 0 && (parts[i] == "rule" || parts[i] == "upstream") && i+1 < len(parts) {
			if n, err := strconv.Atoi(parts[i+1]); err == nil {
				b.WriteString("[" + strconv.Itoa(n+1) + "]")
				i++
			}
		}
	}
	return b.String()
}

var (
	// go-toml's type mismatch messages name our unexported Go types;
	// these rewrite them in TOML terms.
	mismatchField  = regexp.MustCompile(`^cannot decode TOML (\w+(?: \w+)?) into struct field ([\w.]+)\.(\w+) of type (.+?)( at position \d+)?$`)
	mismatchValue  = regexp.MustCompile(`^cannot decode TOML (\w+(?: \w+)?) into a Go value of type (.+)$`)
	mismatchInline = regexp.MustCompile(`^cannot store inline table in Go type (\w+)$`)
	mismatchBool   = regexp.MustCompile(`^cannot assign boolean to`)
)

// fieldKeys maps "Type.Field" of the file model to the key path pattern
// it is decoded from; "*" stands for an element number.
var fieldKeys = func() map[string]string {
	m := make(map[string]string)
	add := func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			m[typ.String()+"."+f.Name] = join(prefix, f.Tag.Get("toml"))
		}
	}
	add(reflect.TypeFor[file](), "")
	add(reflect.TypeFor[fileTimeouts](), "timeouts")
	add(reflect.TypeFor[fileLimits](), "limits")
	add(reflect.TypeFor[fileGuard](), "guard")
	add(reflect.TypeFor[filePolicy](), "policy")
	add(reflect.TypeFor[fileRule](), "rule.*")
	return m
}()

// find returns the first key written in the file that matches pattern.
func (pos *positions) find(pattern string) (keyLine, bool) {
	want := strings.Split(pattern, ".")
	for _, k := range pos.keys {
		got := strings.Split(k.path, ".")
		if len(got) != len(want) {
			continue
		}
		ok := true
		for i := range got {
			if want[i] == "*" {
				_, err := strconv.Atoi(got[i])
				ok = ok && err == nil
			} else {
				ok = ok && want[i] == got[i]
			}
		}
		if ok {
			return k, true
		}
	}
	return keyLine{}, false
}

// tomlType names the TOML form a Go type of the file model is decoded from.
func tomlType(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "a string"
	case goType == "[]string", goType == "*[]string":
		return "an array of strings"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "*int"):
		return "an integer"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.HasPrefix(goType, "map["):
		return "a table of arrays of strings"
	case goType == "slice":
		return "an array"
	case strings.HasPrefix(goType, "[]"):
		return "an array of tables"
	}
	return "a table"
}

// decodeErrors turns go-toml's errors into *Error values with file, line and
// key.
func decodeErrors(name string, doc []byte, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for _, de := range strict.Errors {
			line, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			errs = append(errs, &Error{File: name, Line: line, Key: display(key), Err: errors.New("unknown key")})
		}
		return joinSorted(errs)
	}
	e := &Error{File: name}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		e.Line, _ = de.Position()
	}
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	e.Err = errors.New(msg)
	pos, parsed := index(doc)
	mismatch := true
	if m := mismatchField.FindStringSubmatch(msg); m != nil {
		e.Err = errors.New("expected " + tomlType(m[4]) + ", not " + article(m[1]))
		if k, ok := pos.find(fieldKeys[m[2]+"."+m[3]]); ok && e.Line == 0 {
			// go-toml gives no position for some mismatches (an
			// array where a string belongs); the field names the key.
			e.Line, e.Key = k.line, display(k.path)
		}
	} else if m := mismatchValue.FindStringSubmatch(msg); m != nil {
		e.Err = errors.New("expected " + tomlType(m[2]) + ", not " + article(m[1]))
	} else if m := mismatchInline.FindStringSubmatch(msg); m != nil {
		e.Err = errors.New("expected " + tomlType(m[1]) + ", not an inline table")
	} else if mismatchBool.MatchString(msg) {
		e.Err = errors.New("unexpected true or false")
	} else {
		mismatch = false
	}
	// A syntax error has no key. Otherwise the document parses, and the
	// key is the one written where the error is.
	if e.Key == "" && e.Line > 0 && (parsed || mismatch) {
		e.Key = display(pos.keyBefore(e.Line))
	}
	return e
}

// joinSorted joins errs in the order of their lines.
func joinSorted(errs []error) error {
	slices.SortStableFunc(errs, func(a, b error) int {
		return cmp.Compare(lineOfErr(a), lineOfErr(b))
	})
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func lineOfErr(err error) int {
	if e, ok := err.(*Error); ok {
		return e.Line
	}
	return 0
}

func article(kind string) string {
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + kind
	}
	return "a " + kind
}
