package form

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"

	"github.com/ipnlab/ipnlab/internal/suggest"
)

// DefaultCharset is what PayPal assumes when a message names none.
const DefaultCharset = "windows-1252"

// ErrUnknownCharset is wrapped when a charset label names no known encoding.
var ErrUnknownCharset = errors.New("unknown charset")

// ErrUnrepresentable is wrapped when text has a character the charset lacks.
var ErrUnrepresentable = errors.New("character not representable in charset")

// Charset converts between UTF-8 text and a message's raw bytes.
type Charset struct {
	label string // as the message spells it ("KOI8_R")
	name  string // canonical name ("koi8-r")
	enc   encoding.Encoding
	utf8  bool
	ascii bool // ASCII bytes stand for themselves, both ways
}

// asciiSafe caches, per canonical name, whether an encoding maps every
// ASCII byte to itself: then ASCII-only text, most of any IPN, needs no
// conversion.
var asciiSafe sync.Map

func isASCIISafe(name string, enc encoding.Encoding) bool {
	if v, ok := asciiSafe.Load(name); ok {
		return v.(bool)
	}
	var b strings.Builder
	for c := range utf8.RuneSelf {
		b.WriteByte(byte(c))
	}
	all := b.String()
	out, err1 := enc.NewEncoder().String(all)
	back, err2 := enc.NewDecoder().String(all)
	safe := err1 == nil && err2 == nil && out == all && back == all
	asciiSafe.Store(name, safe)
	return safe
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// CommonLabels are the charset labels a merchant picks in PayPal's
// language encoding settings, with the Latin-n names people type: what a
// "did you mean" suggests from.
var CommonLabels = []string{"UTF-8", "windows-1252", "ISO-8859-1", "ISO-8859-2", "ISO-8859-5", "ISO-8859-7", "ISO-8859-8", "ISO-8859-9", "ISO-8859-15",
	"Latin-9", "windows-1250", "windows-1251", "windows-1253", "windows-1254", "windows-1255", "windows-1256", "windows-1257", "windows-1258",
	"KOI8-R", "Big5", "GB2312", "GBK", "Shift_JIS", "EUC-JP", "EUC-KR", "ISO-2022-JP", "US-ASCII", "UTF-16"}

// LookupCharset finds the encoding for a label as PayPal writes them
// ("windows-1252", "UTF-8", "KOI8_R", ...). IANA names are tried first so
// that "ISO-8859-1" stays Latin-1; web labels such as "KOI8_R" or "utf8"
// come from the WHATWG index.
func LookupCharset(label string) (Charset, error) {
	trimmed := strings.TrimSpace(label)
	if trimmed == "" {
		return Charset{}, fmt.Errorf("charset %q: %w", label, ErrUnknownCharset)
	}
	enc, err := ianaindex.IANA.Encoding(trimmed)
	if err != nil || enc == nil {
		enc, err = htmlindex.Get(trimmed)
		if err != nil {
			return Charset{}, fmt.Errorf("charset %q: %w%s", label, ErrUnknownCharset, suggest.Hint(trimmed, CommonLabels))
		}
	}
	name, err := ianaindex.IANA.Name(enc)
	if err != nil {
		name, _ = htmlindex.Name(enc)
	}
	isUTF8 := enc == unicode.UTF8 || strings.EqualFold(name, "utf-8")
	name = strings.ToLower(name)
	return Charset{label: trimmed, name: name, enc: enc, utf8: isUTF8, ascii: isUTF8 || isASCIISafe(name, enc)}, nil
}

// MustCharset is LookupCharset for labels known at compile time.
func MustCharset(label string) Charset {
	c, err := LookupCharset(label)
	if err != nil {
		panic(err)
	}
	return c
}

// Label is the charset as the message spells it.
func (c Charset) Label() string { return c.label }

// Name is the canonical lower-case name, for comparing two labels.
func (c Charset) Name() string { return c.name }

// IsUTF8 reports whether the charset is UTF-8.
func (c Charset) IsUTF8() bool { return c.utf8 }

// Encode converts UTF-8 text to the charset's bytes, failing on the first
// character the charset cannot hold (PayPal never sends a substitute).
func (c Charset) Encode(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", fmt.Errorf("encode to %s: text is not valid UTF-8", c.label)
	}
	if c.utf8 || (c.ascii && isASCII(text)) {
		return text, nil
	}
	out, err := c.enc.NewEncoder().String(text)
	if err != nil {
		for _, r := range text {
			if _, e := c.enc.NewEncoder().String(string(r)); e != nil {
				return "", fmt.Errorf("encode %q to %s: %q: %w", text, c.label, r, ErrUnrepresentable)
			}
		}
		return "", fmt.Errorf("encode %q to %s: %w", text, c.label, err)
	}
	return out, nil
}

// Decode converts the charset's bytes to UTF-8 text. Bytes that are not
// valid in the charset become U+FFFD, so Decode never fails on a body;
// Valid tells whether that happened.
func (c Charset) Decode(raw string) string {
	if c.utf8 {
		return strings.ToValidUTF8(raw, "\uFFFD")
	}
	if c.ascii && isASCII(raw) {
		return raw
	}
	out, err := c.enc.NewDecoder().String(raw)
	if err != nil {
		return strings.ToValidUTF8(raw, "\uFFFD")
	}
	return out
}

// Valid reports whether raw decodes in the charset without substitution and
// encodes back to the same bytes.
func (c Charset) Valid(raw string) bool {
	if c.utf8 {
		return utf8.ValidString(raw)
	}
	text := c.Decode(raw)
	back, err := c.Encode(text)
	return err == nil && back == raw
}

// Charset returns the charset named by the form's "charset" field, or
// DefaultCharset when it has none.
func (f Form) Charset() (Charset, error) {
	label, ok := f.Get("charset")
	if !ok || label == "" {
		return LookupCharset(DefaultCharset)
	}
	return LookupCharset(label)
}

// Text returns the form with every name and value decoded to UTF-8.
func (f Form) Text(c Charset) Form {
	out := make(Form, len(f))
	for i, fd := range f {
		out[i] = Field{Name: c.Decode(fd.Name), Value: c.Decode(fd.Value)}
	}
	return out
}

// EncodeText converts a form of UTF-8 text to the charset's bytes.
func EncodeText(text Form, c Charset) (Form, error) {
	out := make(Form, len(text))
	for i, fd := range text {
		name, err := c.Encode(fd.Name)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", fd.Name, err)
		}
		value, err := c.Encode(fd.Value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", fd.Name, err)
		}
		out[i] = Field{Name: name, Value: value}
	}
	return out, nil
}
