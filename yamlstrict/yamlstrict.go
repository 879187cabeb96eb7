// Package yamlstrict decodes a YAML document into a Go value, refusing
// fields the value does not have, with errors in the file's words: the
// line, the unknown key and the keys that are known, never Go type names.
package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode reads raw into v (a pointer), refusing unknown fields.
func Decode(raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err := dec.Decode(v)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	known := map[string][]string{}
	collect(reflect.TypeOf(v), known, map[reflect.Type]bool{})
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = plain(m, known)
	}
	return errors.New(strings.Join(msgs, "; "))
}

var (
	unknownField = regexp.MustCompile(`^(line \d+): field (\S+) not found in type (\S+)$`)
	cannot       = regexp.MustCompile("^(line \\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// plain rewrites one of yaml's messages.
func plain(m string, known map[string][]string) string {
	if g := unknownField.FindStringSubmatch(m); g != nil {
		if names := known[g[3]]; len(names) > 0 {
			return fmt.Sprintf("%s: unknown field %q: want one of %s", g[1], g[2], strings.Join(names, ", "))
		}
		return fmt.Sprintf("%s: unknown field %q", g[1], g[2])
	}
	if g := cannot.FindStringSubmatch(m); g != nil {
		return fmt.Sprintf("%s: %q is not %s", g[1], g[3], kindOf(g[4]))
	}
	return m
}

// kindOf names a Go type as a person would.
func kindOf(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration (30s, 5m)"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "text"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping of keys to values"
	}
	return "a mapping of the fields it takes"
}

// collect maps each struct type reachable from t (as yaml names it in
// errors: package.Type) to its YAML keys, sorted.
func collect(t reflect.Type, out map[string][]string, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		switch {
		case tag[0] == "-":
			continue
		case slices.Contains(tag[1:], "inline"):
			collect(f.Type, out, seen)
			names = append(names, out[typeName(f.Type)]...)
			continue
		case tag[0] != "":
			names = append(names, tag[0])
		default:
			names = append(names, strings.ToLower(f.Name))
		}
		collect(f.Type, out, seen)
	}
	sort.Strings(names)
	out[typeName(t)] = names
}

func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.String()
}
