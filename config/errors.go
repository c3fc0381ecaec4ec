package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// KeyError is a problem with one configuration key. Load fills in where
// the key was set: its line and column in the file, or the BERTH_*
// variable that set it, so `berth config check` can point at it.
type KeyError struct {
	// Key is the key's full path, e.g. auth.access[1].repositories[0].
	Key string
	// File, Line and Column locate the key in the configuration file
	// (Line 0: the key is not in the file).
	File         string
	Line, Column int
	// Env is the BERTH_* variable that set the key, if one did.
	Env string
	Err error

	path path
}

func (e *KeyError) Error() string {
	msg := e.Err.Error()
	if e.Key != "" {
		msg = e.Key + ": " + msg
	}
	switch {
	case e.Env != "":
		return "environment " + e.Env + ": " + msg
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	case e.File != "":
		return e.File + ": " + msg
	}
	return msg
}

func (e *KeyError) Unwrap() error { return e.Err }

// path is a key path: string keys and int list indexes. Map keys (user
// and group names) may hold dots, so a path is kept in parts and only
// printed as a dotted string.
type path []any

func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch s := s.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

// with returns a new path: p followed by more.
func (p path) with(more ...any) path {
	return append(append(make(path, 0, len(p)+len(more)), p...), more...)
}

// problems collects KeyErrors.
type problems []*KeyError

func (ps *problems) add(p path, format string, args ...any) {
	*ps = append(*ps, &KeyError{Key: p.String(), path: p, Err: fmt.Errorf(format, args...)})
}

func (ps *problems) addErr(p path, err error) {
	*ps = append(*ps, &KeyError{Key: p.String(), path: p, Err: err})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, e := range ps {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// locate finds p in the YAML document root and returns the line and
// column of its key (or of its list item). A key that is not in the file
// (a default, or a missing required key) is located at its nearest
// ancestor that is, with exact false; 0, 0 when none is.
func locate(root *yaml.Node, p path) (line, col int, exact bool) {
	if root == nil {
		return 0, 0, false
	}
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return 0, 0, false
		}
		n = n.Content[0]
	}
	for i, seg := range p {
		n = deref(n)
		var at, next *yaml.Node
		switch s := seg.(type) {
		case int:
			if n.Kind == yaml.SequenceNode && s >= 0 && s < len(n.Content) {
				at, next = n.Content[s], n.Content[s]
			}
		case string:
			if n.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(n.Content); j += 2 {
					if n.Content[j].Value == s {
						at, next = n.Content[j], n.Content[j+1]
					}
				}
			}
		}
		if at == nil {
			return line, col, false
		}
		line, col, n = at.Line, at.Column, next
		if i == len(p)-1 {
			return line, col, true
		}
	}
	return line, col, len(p) == 0
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// atLine returns the deepest key on line (whose key or scalar value is
// there), else the deepest list item on it, and its column: yaml.v3's
// decoding errors carry a line only.
func atLine(root *yaml.Node, line int) (path, int) {
	var key, item path
	keyCol, itemCol := 0, 0
	var visit func(n *yaml.Node, p path, depth int)
	visit = func(n *yaml.Node, p path, depth int) {
		if n == nil || depth > 100 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				visit(c, p, depth+1)
			}
		case yaml.MappingNode:
			for j := 0; j+1 < len(n.Content); j += 2 {
				k, v := n.Content[j], n.Content[j+1]
				kp := p.with(k.Value)
				if (k.Line == line || (v.Kind == yaml.ScalarNode && v.Line == line)) && len(kp) >= len(key) {
					key, keyCol = kp, k.Column
				}
				visit(v, kp, depth+1)
			}
		case yaml.SequenceNode:
			for j, c := range n.Content {
				cp := p.with(j)
				if c.Line == line && len(cp) >= len(item) {
					item, itemCol = cp, c.Column
				}
				visit(c, cp, depth+1)
			}
		}
	}
	visit(root, nil, 0)
	if key != nil {
		return key, keyCol
	}
	return item, itemCol
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

var notFound = regexp.MustCompile(`^field (.+) not found in type \S+$`)

// yamlErrors turns the YAML library's errors (syntax, types, unknown
// keys) into KeyErrors that name the file, line, column and key.
func yamlErrors(file string, root *yaml.Node, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var ps problems
	for _, m := range msgs {
		ke := &KeyError{File: file, Err: errors.New(strings.TrimPrefix(m, "yaml: "))}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			ke.Line, _ = strconv.Atoi(sm[1])
			msg := sm[2]
			if p, col := atLine(root, ke.Line); p != nil {
				ke.path, ke.Key, ke.Column = p, p.String(), col
			}
			if nf := notFound.FindStringSubmatch(msg); nf != nil {
				msg = "unknown key " + strconv.Quote(nf[1])
			}
			ke.Err = errors.New(msg)
		}
		ps = append(ps, ke)
	}
	return ps.err()
}

// place fills in where each problem's key was set: the BERTH_* variable
// that set it (or an ancestor), else its position in the file. Problems
// are then ordered by line, those outside the file last.
func place(ps problems, file string, root *yaml.Node, fromEnv map[string]string) problems {
	for _, e := range ps {
		for i := len(e.path); i > 0 && e.Env == ""; i-- {
			e.Env = fromEnv[e.path[:i].String()]
		}
		if e.Env != "" || file == "" {
			continue
		}
		if line, col, _ := locate(root, e.path); line > 0 {
			e.File, e.Line, e.Column = file, line, col
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return ps
}
