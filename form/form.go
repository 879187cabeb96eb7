// Package form is the application/x-www-form-urlencoded codec that PayPal IPN
// messages travel in.
//
// A message is an ordered list of (name, value) pairs whose bytes are in the
// charset the message names (see Charset), never re-interpreted as text by
// the codec: order, duplicates and raw bytes survive a round trip. Encode
// percent-encodes the way PayPal does (space as '+', uppercase hex, '/' kept
// as is); Parse accepts any valid encoding and rejects malformed escapes with
// a precise *SyntaxError.
package form

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Field is one pair of a message. Name and Value hold raw bytes in the
// message's charset, already percent-decoded.
type Field struct {
	Name  string
	Value string
}

// Form is an ordered list of fields. PayPal's order is part of the message:
// a strict verifier compares it, so nothing here sorts.
type Form []Field

// MaxFields bounds the fields Parse accepts. PayPal's largest messages (a
// 100-item cart, a 250-item Mass Pay) stay well below; past it a body is
// an attack on whatever compares fields, not a notification.
const MaxFields = 5000

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("malformed form encoding")

// SyntaxError says where a body stops being valid form encoding.
type SyntaxError struct {
	Offset int    // byte offset into the body
	Msg    string // what is wrong there
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed form encoding at byte %d: %s", e.Offset, e.Msg)
}

// Unwrap lets callers branch with errors.Is(err, ErrMalformed).
func (e *SyntaxError) Unwrap() error { return ErrMalformed }

// Get returns the value of the first field called name.
func (f Form) Get(name string) (string, bool) {
	for _, fd := range f {
		if fd.Name == name {
			return fd.Value, true
		}
	}
	return "", false
}

// Value returns the value of the first field called name, or "".
func (f Form) Value(name string) string {
	v, _ := f.Get(name)
	return v
}

// Set replaces the value of the first field called name, keeping its
// position, or appends the field when there is none. It returns the form,
// which may have been reallocated.
func (f Form) Set(name, value string) Form {
	for i := range f {
		if f[i].Name == name {
			f[i].Value = value
			return f
		}
	}
	return append(f, Field{Name: name, Value: value})
}

// Del removes every field called name.
func (f Form) Del(name string) Form {
	out := f[:0]
	for _, fd := range f {
		if fd.Name != name {
			out = append(out, fd)
		}
	}
	return out
}

// Clone returns a copy that shares no backing array with f.
func (f Form) Clone() Form {
	if f == nil {
		return nil
	}
	return append(Form(nil), f...)
}

// Equal reports whether both forms hold the same fields in the same order.
func (f Form) Equal(g Form) bool {
	if len(f) != len(g) {
		return false
	}
	for i := range f {
		if f[i] != g[i] {
			return false
		}
	}
	return true
}

// Encode returns the body PayPal would send for f.
func (f Form) Encode() []byte {
	return f.AppendEncode(make([]byte, 0, f.encodedLen()))
}

// AppendEncode appends the encoding of f to dst.
func (f Form) AppendEncode(dst []byte) []byte {
	for i, fd := range f {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = AppendEscape(dst, fd.Name)
		dst = append(dst, '=')
		dst = AppendEscape(dst, fd.Value)
	}
	return dst
}

func (f Form) encodedLen() int {
	n := 0
	for _, fd := range f {
		n += len(fd.Name) + len(fd.Value) + 2
	}
	return n + n/4
}

// String renders the encoded form, for logs and test failures.
func (f Form) String() string { return string(f.Encode()) }

const upperhex = "0123456789ABCDEF"

// keptAsIs marks the bytes PayPal leaves unescaped: letters, digits, "-_."
// and '/', which PayPal keeps in URLs ("http%3A//host/path").
var keptAsIs = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_./" {
		t[c] = true
	}
	return t
}()

// AppendEscape appends s percent-encoded as PayPal encodes names and values.
func AppendEscape(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case keptAsIs[c]:
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
	}
	return dst
}

// Escape returns s percent-encoded as PayPal encodes names and values.
func Escape(s string) string { return string(AppendEscape(nil, s)) }

// Token is one raw "name=value" segment of a body, as it was on the wire.
type Token struct {
	Offset   int    // byte offset of the segment in the body
	Name     string // raw, still percent-encoded
	Value    string // raw, still percent-encoded
	HasEqual bool   // false for a segment with no '=' at all
}

// Tokens splits a body into its raw segments. Empty segments ("a=1&&b=2",
// a trailing '&') carry no field and are left out; they still change the
// bytes, which a strict comparison sees.
func Tokens(body []byte) []Token {
	s := string(body)
	toks := make([]Token, 0, strings.Count(s, "&")+1)
	for t := range tokens(s) {
		toks = append(toks, t)
	}
	return toks
}

// tokens yields the raw segments of s in order, without a slice (Parse
// needs them once each).
func tokens(s string) func(yield func(Token) bool) {
	return func(yield func(Token) bool) {
		off := 0
		for off <= len(s) {
			end := strings.IndexByte(s[off:], '&')
			if end < 0 {
				end = len(s)
			} else {
				end += off
			}
			if seg := s[off:end]; seg != "" {
				t := Token{Offset: off, Name: seg}
				if eq := strings.IndexByte(seg, '='); eq >= 0 {
					t.Name, t.Value, t.HasEqual = seg[:eq], seg[eq+1:], true
				}
				if !yield(t) {
					return
				}
			}
			off = end + 1
		}
	}
}

// Parse decodes a body into its ordered fields. A segment without '='
// becomes a field with an empty value, as HTML forms treat it.
func Parse(body []byte) (Form, error) {
	if n := bytes.Count(body, []byte{'&'}) + 1; n > MaxFields {
		at := 0
		for range MaxFields {
			at += bytes.IndexByte(body[at:], '&') + 1
		}
		return nil, &SyntaxError{Offset: at, Msg: fmt.Sprintf("more than %d fields (%d): not an IPN", MaxFields, n)}
	}
	raw := string(body)
	f := make(Form, 0, strings.Count(raw, "&")+1)
	for t := range tokens(raw) {
		fd, err := t.Decode()
		if err != nil {
			return nil, err
		}
		f = append(f, fd)
	}
	return f, nil
}

// Decode percent-decodes the token into a field.
func (t Token) Decode() (Field, error) {
	name, err := unescape(t.Name, t.Offset)
	if err != nil {
		return Field{}, err
	}
	if name == "" {
		return Field{}, &SyntaxError{Offset: t.Offset, Msg: "field with an empty name"}
	}
	value, err := unescape(t.Value, t.Offset+len(t.Name)+1)
	if err != nil {
		return Field{}, err
	}
	return Field{Name: name, Value: value}, nil
}

// Unescape percent-decodes one raw name or value ('+' is a space).
func Unescape(s string) (string, error) { return unescape(s, 0) }

func unescape(s string, base int) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) {
				return "", &SyntaxError{Offset: base + i, Msg: fmt.Sprintf("truncated escape %q", s[i:])}
			}
			hi, okHi := unhex(s[i+1])
			lo, okLo := unhex(s[i+2])
			if !okHi || !okLo {
				return "", &SyntaxError{Offset: base + i, Msg: fmt.Sprintf("invalid escape %q", s[i:i+3])}
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
