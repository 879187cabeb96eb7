// Package orderedjson is a JSON document whose objects keep their key
// order, with dotted-path access. PayDo's notifications are JSON; keeping
// the documented key order makes generated messages look like real ones,
// and path overrides ("transaction.status") are checked against the
// document instead of being silently added.
package orderedjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Object is a JSON object with ordered members. Values are string,
// json.Number, bool, nil, Object or []any.
type Object []Member

// Member is one key of an Object.
type Member struct {
	Key   string
	Value any
}

// MaxDepth bounds nesting when parsing, so hostile input cannot exhaust
// the stack.
const MaxDepth = 32

// ErrTooDeep is wrapped when a value nests deeper than MaxDepth.
var ErrTooDeep = errors.New("nested deeper")

// ErrPath is wrapped when a path does not name a member.
var ErrPath = errors.New("no such field")

// Get returns the value at a dotted path ("transaction.status").
func (o Object) Get(path string) (any, bool) {
	cur := any(o)
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(Object)
		if !ok {
			return nil, false
		}
		i := obj.index(k)
		if i < 0 {
			return nil, false
		}
		cur = obj[i].Value
	}
	return cur, true
}

// Set replaces the value at path. Every key on the path must exist, unless
// a parent on the path is listed in open (free-form objects such as
// "invoice.metadata"), where new keys are appended.
func (o Object) Set(path string, value any, open ...string) (Object, error) {
	keys := strings.Split(path, ".")
	return o.set(keys, "", value, open)
}

func (o Object) set(keys []string, parent string, value any, open []string) (Object, error) {
	k := keys[0]
	here := k
	if parent != "" {
		here = parent + "." + k
	}
	i := o.index(k)
	if i < 0 {
		if !slices.Contains(open, parent) || len(keys) > 1 {
			return o, fmt.Errorf("%q: %w; %s", here, ErrPath, o.choices(parent))
		}
		return append(o, Member{Key: k, Value: value}), nil
	}
	if len(keys) == 1 {
		out := slices.Clone(o)
		out[i].Value = value
		return out, nil
	}
	child, ok := o[i].Value.(Object)
	if !ok {
		return o, fmt.Errorf("%q: %w: %q is not an object", strings.Join(append([]string{here}, keys[1:]...), "."), ErrPath, here)
	}
	nc, err := child.set(keys[1:], here, value, open)
	if err != nil {
		return o, err
	}
	out := slices.Clone(o)
	out[i].Value = nc
	return out, nil
}

// Paths lists every leaf path, in document order.
func (o Object) Paths() []string {
	var out []string
	var walk func(prefix string, obj Object)
	walk = func(prefix string, obj Object) {
		for _, m := range obj {
			p := m.Key
			if prefix != "" {
				p = prefix + "." + m.Key
			}
			if child, ok := m.Value.(Object); ok && len(child) > 0 {
				walk(p, child)
			} else {
				out = append(out, p)
			}
		}
	}
	walk("", o)
	return out
}

func (o Object) choices(parent string) string {
	keys := make([]string, len(o))
	for i, m := range o {
		keys[i] = m.Key
	}
	where := "the top level"
	if parent != "" {
		where = parent
	}
	return fmt.Sprintf("%s has %s", where, strings.Join(keys, ", "))
}

func (o Object) index(key string) int {
	for i, m := range o {
		if m.Key == key {
			return i
		}
	}
	return -1
}

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		v, err := json.Marshal(m.Value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", m.Key, err)
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Parse reads one JSON object, keeping key order and numbers as written.
// It rejects duplicate keys, nesting deeper than MaxDepth and trailing data.
func Parse(data []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(Object)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", describe(v))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// ParseValue reads one JSON value of any type, as Parse does.
func ParseValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w than %d levels", ErrTooDeep, MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("unexpected end of JSON")
		}
		return nil, fmt.Errorf("invalid JSON at byte %d: %w", dec.InputOffset(), err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj Object
			var seen map[string]bool // past a few members: a scan per key made 40,000 keys quadratic
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON at byte %d: %w", dec.InputOffset(), err)
				}
				key := kt.(string)
				if len(obj) == 16 {
					seen = make(map[string]bool, 64)
					for _, m := range obj {
						seen[m.Key] = true
					}
				}
				if (seen == nil && obj.index(key) >= 0) || seen[key] {
					return nil, fmt.Errorf("duplicate key %q", key)
				}
				if seen != nil {
					seen[key] = true
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj = append(obj, Member{Key: key, Value: v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON at byte %d: %w", dec.InputOffset(), err)
			}
			if obj == nil {
				obj = Object{}
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON at byte %d: %w", dec.InputOffset(), err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("invalid JSON at byte %d: unexpected %q", dec.InputOffset(), t)
	default:
		return t, nil
	}
}

func describe(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
