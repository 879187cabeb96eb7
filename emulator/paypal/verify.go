package paypal

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/form"
)

// Postback is what a listener sent to the verifier.
type Postback struct {
	Method    string
	RawQuery  string
	Body      []byte
	UserAgent string
	// Endpoint is the PayPal environment whose host it was posted to
	// (through the intercepting proxy), or none: the emulator's own URL.
	Endpoint Endpoint
	// Host is the host it was posted to, as the request named it.
	Host string
}

// Endpoint is the PayPal environment a verify host belongs to.
type Endpoint = api.Endpoint

// The environments; EndpointNone is the emulator's own address, which
// stands for whichever the message needs.
const (
	EndpointNone    Endpoint = ""
	EndpointLive    Endpoint = "live"
	EndpointSandbox Endpoint = "sandbox"
)

// Verify hosts, by environment.
const (
	LiveHost          = "ipnpb.paypal.com"
	SandboxHost       = "ipnpb.sandbox.paypal.com"
	LegacyLiveHost    = "www.paypal.com"
	LegacySandboxHost = "www.sandbox.paypal.com"
)

// EndpointOf says which environment host (a Host header, with or without
// a port) is PayPal's verifier for, and whether it is a legacy www. host.
func EndpointOf(host string) (e Endpoint, legacy bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	switch strings.ToLower(strings.TrimSuffix(host, ".")) {
	case LiveHost:
		return EndpointLive, false
	case SandboxHost:
		return EndpointSandbox, false
	case LegacyLiveHost:
		return EndpointLive, true
	case LegacySandboxHost:
		return EndpointSandbox, true
	}
	return EndpointNone, false
}

// HostOf is the current verify host of an environment.
func HostOf(e Endpoint) string {
	if e == EndpointSandbox {
		return SandboxHost
	}
	return LiveHost
}

// endpointFinding is the finding for a message posted back to the other
// environment's verifier: PayPal's live service does not know sandbox
// messages, nor the sandbox live ones, and answers INVALID.
// It names the host used and the one of the same family (ipnpb. or the
// legacy www.) the message needed.
func endpointFinding(m *Message, pb Postback) *Finding {
	want := EndpointLive
	if m.Sandbox {
		want = EndpointSandbox
	}
	got := pb.Endpoint
	_, legacy := EndpointOf(pb.Host)
	if got == EndpointNone || got == want {
		return nil
	}
	used, wantHost := HostOf(got), HostOf(want)
	if legacy {
		used, wantHost = LegacyLiveHost, LegacySandboxHost
		if want == EndpointLive {
			used, wantHost = LegacySandboxHost, LegacyLiveHost
		}
	}
	what := "a live message (no test_ipn)"
	if m.Sandbox {
		what = "a sandbox message (test_ipn=1)"
	}
	return &Finding{Rule: RuleEndpoint, Fatal: true, Expected: wantHost, Got: used,
		Detail: fmt.Sprintf("%s was posted back to the %s verifier %s, which does not know it and answers INVALID: post it to %s (choose the host by test_ipn)",
			what, got, used, wantHost)}
}

// finder returns the messages a postback may be a copy of.
type finder func(verifySign, txnID, trackID string) []*Message

// decoded is a body or query split into raw tokens and decoded fields.
type decoded struct {
	toks   []form.Token
	fields form.Form
}

func decode(raw []byte, where string) (decoded, *Finding) {
	toks := form.Tokens(raw)
	d := decoded{toks: toks, fields: make(form.Form, 0, len(toks))}
	for _, t := range toks {
		fd, err := t.Decode()
		if err != nil {
			var se *form.SyntaxError
			detail := err.Error()
			if errors.As(err, &se) {
				detail = fmt.Sprintf("%s: byte %d: %s", where, se.Offset, se.Msg)
			}
			return d, &Finding{Rule: RuleMalformed, Fatal: true, Detail: detail}
		}
		d.fields = append(d.fields, fd)
	}
	return d, nil
}

// check judges one postback. It is a pure function of its inputs.
func check(mode Mode, pb Postback, find finder) (v Verdict) {
	defer finish(&v)
	strict := mode == ModeStrict

	if pb.Method != http.MethodPost {
		v.Findings = append(v.Findings, Finding{Rule: RuleMethod, Fatal: true,
			Detail: fmt.Sprintf("postback must be a POST, got %s", pb.Method)})
		return v
	}
	if exactFastPath {
		if m, ok := exactPostback(pb, find); ok {
			// What the comparison below concludes for these bytes: no
			// finding, but the endpoint's.
			v.MessageID = m.ID
			if f := endpointFinding(m, pb); f != nil {
				v.Findings = append(v.Findings, *f)
			}
			return v
		}
	}
	body, bad := decode(pb.Body, "body")
	if bad != nil {
		v.Findings = append(v.Findings, *bad)
		v.MessageID = identify(pb, find)
		return v
	}
	query, bad := decode([]byte(pb.RawQuery), "query string")
	if bad != nil {
		v.Findings = append(v.Findings, *bad)
		v.MessageID = identify(pb, find)
		return v
	}

	// Find cmd=_notify-validate: in the body, else in the query string.
	cmdIdx, inQuery := indexOf(body.fields, "cmd"), false
	if cmdIdx < 0 {
		cmdIdx, inQuery = indexOf(query.fields, "cmd"), true
	}
	if cmdIdx < 0 {
		v.Findings = append(v.Findings, Finding{Rule: RuleCmdMissing, Fatal: true,
			Detail: "no cmd=_notify-validate in the body or the query string"})
		return v
	}
	cmdValue := body.fields
	if inQuery {
		cmdValue = query.fields
	}
	if got := cmdValue[cmdIdx].Value; got != "_notify-validate" {
		v.Findings = append(v.Findings, Finding{Rule: RuleCmdMissing, Fatal: true, Field: "cmd",
			Expected: "_notify-validate", Got: form.Escape(got),
			Detail: fmt.Sprintf("cmd is %q, want _notify-validate", got)})
		return v
	}
	switch {
	case inQuery:
		v.Findings = append(v.Findings, Finding{Rule: RuleCmdPlacement, Fatal: strict, Field: "cmd",
			Detail: "cmd=_notify-validate is in the query string; the documentation puts it first in the body"})
	case cmdIdx > 0:
		v.Findings = append(v.Findings, Finding{Rule: RuleCmdPlacement, Fatal: strict, Field: "cmd",
			Detail: fmt.Sprintf("cmd=_notify-validate is field %d of the body; the documentation puts it first", cmdIdx+1)})
	}
	if strings.TrimSpace(pb.UserAgent) == "" {
		v.Findings = append(v.Findings, Finding{Rule: RuleUserAgent, Fatal: strict,
			Detail: "no User-Agent header; PayPal asks for a descriptive one"})
	}

	// The payload: every field but cmd, body first, then the query string.
	var payload decoded
	if !inQuery && cmdIdx == 0 && len(query.toks) == 0 {
		// The usual postback: the rest of the body is the payload as is.
		payload = decoded{toks: body.toks[1:], fields: body.fields[1:]}
	} else {
		n := len(body.toks) + len(query.toks)
		payload = decoded{toks: make([]form.Token, 0, n), fields: make(form.Form, 0, n)}
		for i := range body.toks {
			if inQuery || i != cmdIdx {
				payload.toks = append(payload.toks, body.toks[i])
				payload.fields = append(payload.fields, body.fields[i])
			}
		}
		for i := range query.toks {
			if !inQuery || i != cmdIdx {
				payload.toks = append(payload.toks, query.toks[i])
				payload.fields = append(payload.fields, query.fields[i])
			}
		}
	}
	cands := find(payload.fields.Value("verify_sign"), payload.fields.Value("txn_id"), payload.fields.Value("ipn_track_id"))
	if len(cands) == 0 {
		v.Findings = append(v.Findings, Finding{Rule: RuleUnknownMessage, Fatal: true,
			Detail: fmt.Sprintf("no message was sent with verify_sign %q, txn_id %q or ipn_track_id %q",
				payload.fields.Value("verify_sign"), payload.fields.Value("txn_id"), payload.fields.Value("ipn_track_id"))})
		return v
	}

	// Strict mode compares the bytes after "cmd=_notify-validate&" whole.
	var rest []byte
	if strict && !inQuery && cmdIdx == 0 && len(query.toks) == 0 {
		t := body.toks[0]
		end := t.Offset + len(t.Name) + 1 + len(t.Value)
		if raw := string(pb.Body[:min(end, len(pb.Body))]); raw != "cmd=_notify-validate" {
			v.Findings = append(v.Findings, Finding{Rule: RuleEncoding, Fatal: true, Field: "cmd",
				Expected: "cmd=_notify-validate", Got: raw,
				Detail: "the body does not start with the bytes cmd=_notify-validate"})
		}
		rest = []byte{}
		if end < len(pb.Body) {
			rest = pb.Body[end+1:]
		}
	}
	var best []Finding
	bestFatal := -1
	for _, m := range cands {
		for _, variant := range [][]byte{m.Body, m.ResendBody} {
			fs := compare(mode, m, variant, payload, rest)
			n := countFatal(fs)
			if bestFatal < 0 || n < bestFatal || (n == bestFatal && len(fs) < len(best)) {
				best, bestFatal, v.MessageID = fs, n, m.ID
			}
			if n == 0 && len(fs) == 0 {
				break
			}
		}
	}
	v.Findings = append(v.Findings, best...)
	for _, m := range cands {
		if f := endpointFinding(m, pb); m.ID == v.MessageID && f != nil {
			v.Findings = append(v.Findings, *f)
		}
	}
	return v
}

// exactFastPath lets check recognise the usual correct postback without
// decoding it; a spec turns it off to compare both paths' verdicts.
var exactFastPath = true

// exactPostback recognises the postback every correct listener sends: a
// User-Agent, no query string, cmd=_notify-validate first, then the
// message's bytes (or its resend's) unchanged. It returns the message the
// full comparison would pick: the first, in find's order, whose bytes the
// rest equals. It decodes nothing: under load, decoding the postback was
// the verifier's main cost.
func exactPostback(pb Postback, find finder) (*Message, bool) {
	if pb.RawQuery != "" || strings.TrimSpace(pb.UserAgent) == "" {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(pb.Body, []byte("cmd=_notify-validate&"))
	if !ok {
		return nil, false
	}
	sign := rawValue(rest, "verify_sign")
	if sign == "" || strings.ContainsAny(sign, "%+") {
		return nil, false // escaped: the comparison decodes it
	}
	for _, m := range find(sign, "", "") {
		if bytes.Equal(rest, m.Body) || bytes.Equal(rest, m.ResendBody) {
			return m, true
		}
	}
	return nil, false
}

// rawValue is the first value of name in raw pairs, as sent.
func rawValue(raw []byte, name string) string {
	for len(raw) > 0 {
		pair := raw
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if k, v, ok := bytes.Cut(pair, []byte("=")); ok && string(k) == name {
			return string(v)
		}
	}
	return ""
}

// identify finds the message a malformed postback is about, scanning its
// raw pairs leniently for the identifiers (their values are plain ASCII):
// a listener that leaves one '%' unescaped must hear that its postback
// was malformed, not that it never posted back.
func identify(pb Postback, find finder) string {
	k := KeysOf(pb)
	if ms := find(k.VerifySign, k.TxnID, k.TrackID); len(ms) > 0 {
		return ms[0].ID
	}
	return ""
}

// Keys are what a postback names its message by, as sent (escaped).
type Keys struct {
	VerifySign, TxnID, TrackID string
}

// KeysOf reads a postback's keys from its body, or else its query.
func KeysOf(pb Postback) Keys {
	keys := map[string]string{"verify_sign": "", "txn_id": "", "ipn_track_id": ""}
	for _, raw := range [][]byte{pb.Body, []byte(pb.RawQuery)} {
		for _, pair := range bytes.Split(raw, []byte("&")) {
			name, value, _ := bytes.Cut(pair, []byte("="))
			if v, ok := keys[string(name)]; ok && v == "" {
				keys[string(name)] = strings.ReplaceAll(string(value), "+", " ")
			}
		}
	}
	return Keys{VerifySign: keys["verify_sign"], TxnID: keys["txn_id"], TrackID: keys["ipn_track_id"]}
}

// compare diagnoses a postback's payload against one body PayPal sent.
// rest is the strict-mode remainder of the body (nil when not applicable).
func compare(mode Mode, m *Message, sentBody []byte, got decoded, rest []byte) []Finding {
	sent, _ := decode(sentBody, "message")
	if !sent.fields.Equal(got.fields) {
		return diffFields(mode, m.Charset, sent.fields, got.fields)
	}
	// Same bytes once decoded: only the escaping may differ.
	if rest != nil {
		if bytes.Equal(rest, sentBody) {
			return nil
		}
		return []Finding{encodingFinding(true, sentBody, rest, sent)}
	}
	for i := range sent.toks {
		s, g := sent.toks[i], got.toks[i]
		if s.Name != g.Name || s.Value != g.Value {
			return []Finding{{Rule: RuleEncoding, Fatal: mode == ModeStrict, Field: sent.fields[i].Name,
				Expected: s.Name + "=" + s.Value, Got: g.Name + "=" + g.Value,
				Detail: fmt.Sprintf("field %q is escaped differently (same bytes once decoded)", sent.fields[i].Name)}}
		}
	}
	return nil
}

// encodingFinding points at the first byte where the remainder differs.
func encodingFinding(fatal bool, sent, got []byte, d decoded) Finding {
	i := 0
	for i < len(sent) && i < len(got) && sent[i] == got[i] {
		i++
	}
	field := ""
	for k, t := range d.toks {
		if t.Offset <= i {
			field = d.fields[k].Name
		}
	}
	return Finding{Rule: RuleEncoding, Fatal: fatal, Field: field,
		Expected: excerpt(sent, i), Got: excerpt(got, i),
		Detail: fmt.Sprintf("the bytes after cmd=_notify-validate& differ from the message at byte %d (field %q): same fields once decoded, other escaping", i, field)}
}

func excerpt(b []byte, i int) string {
	lo, hi := max(0, i-12), min(len(b), i+12)
	return string(b[lo:hi])
}

// diffFields explains how two decoded field lists differ.
func diffFields(mode Mode, cs form.Charset, sent, got form.Form) []Finding {
	var fs []Finding
	byName := make(map[string][]int, len(got))
	for j, fd := range got {
		byName[fd.Name] = append(byName[fd.Name], j)
	}
	matched := make([]bool, len(got))
	for _, s := range sent {
		idx := byName[s.Name]
		if len(idx) == 0 {
			detail := fmt.Sprintf("field %q was dropped", s.Name)
			if s.Value == "" {
				detail += " (it was empty)"
			}
			fs = append(fs, Finding{Rule: RuleFieldDropped, Fatal: true, Field: s.Name,
				Expected: form.Escape(s.Value), ExpectedText: cs.Decode(s.Value), Detail: detail})
			continue
		}
		j := idx[0]
		byName[s.Name] = idx[1:]
		matched[j] = true
		if g := got[j].Value; g != s.Value {
			rule, how := classify(s.Name, s.Value, g, cs)
			fs = append(fs, Finding{Rule: rule, Fatal: true, Field: s.Name,
				Expected: form.Escape(s.Value), Got: form.Escape(g),
				ExpectedText: cs.Decode(s.Value), GotText: cs.Decode(g),
				Detail: fmt.Sprintf("field %q: %s", s.Name, how)})
		}
	}
	for j, g := range got {
		if !matched[j] {
			fs = append(fs, Finding{Rule: RuleFieldAdded, Fatal: true, Field: g.Name,
				Got: form.Escape(g.Value), GotText: cs.Decode(g.Value),
				Detail: fmt.Sprintf("field %q was not in the message", g.Name)})
		}
	}
	if len(fs) > 0 {
		return renames(fs)
	}
	// The same fields and values, in another order.
	for i := range sent {
		if sent[i] != got[i] {
			return []Finding{{Rule: RuleOrder, Fatal: mode == ModeStrict, Field: got[i].Name,
				Expected: sent[i].Name, Got: got[i].Name,
				Detail: fmt.Sprintf("field %d is %q; the message has %q there (same fields, other order)", i+1, got[i].Name, sent[i].Name)}}
		}
	}
	return nil
}

// renames folds a dropped field and an added one with the same value and
// a related name (one a prefix of the other, or the same but for case)
// into one finding: transaction[0].amount read by a PHP-style parser comes
// back as transaction[0], which is a rename, not a loss.
func renames(fs []Finding) []Finding {
	out := fs[:0:0]
	used := make([]bool, len(fs))
	for i, d := range fs {
		if used[i] {
			continue
		}
		if d.Rule == RuleFieldDropped {
			for j, a := range fs {
				if used[j] || a.Rule != RuleFieldAdded || a.Got != d.Expected || !relatedNames(d.Field, a.Field) {
					continue
				}
				used[j] = true
				d = Finding{Rule: RuleFieldRenamed, Fatal: true, Field: d.Field, Expected: d.Field, Got: a.Field,
					ExpectedText: d.ExpectedText, GotText: a.GotText,
					Detail: fmt.Sprintf("field %q came back as %q (same value)", d.Field, a.Field)}
				break
			}
		}
		out = append(out, d)
	}
	return out
}

func relatedNames(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) || strings.EqualFold(a, b)
}

// charsetsTried are the encodings a listener commonly converts to or from.
var charsetsTried = func() []form.Charset {
	var out []form.Charset
	for _, l := range []string{"UTF-8", "windows-1252", "ISO-8859-1", "windows-1255", "windows-1251", "KOI8-R", "ISO-8859-15"} {
		out = append(out, form.MustCharset(l))
	}
	return out
}()

// classify names the rule a changed value broke, and how.
func classify(name, sent, got string, cs form.Charset) (Rule, string) {
	if name == "charset" {
		return RuleCharset, fmt.Sprintf("the charset field was changed from %q to %q", sent, got)
	}
	if sent != got && strings.ReplaceAll(sent, "\r\n", "\n") == strings.ReplaceAll(got, "\r\n", "\n") {
		if strings.Count(sent, "\r\n") > strings.Count(got, "\r\n") {
			return RuleCRLF, "CRLF line breaks became LF"
		}
		return RuleCRLF, "LF line breaks became CRLF"
	}
	if how, ok := plusSpace(sent, got); ok {
		return RulePlusSpace, how
	}
	text := cs.Decode(sent)
	for _, c2 := range charsetsTried {
		if c2.Name() == cs.Name() {
			continue
		}
		if c2.Valid(got) && c2.Decode(got) == text {
			return RuleCharset, fmt.Sprintf("re-encoded from %s to %s (same text, other bytes)", cs.Label(), c2.Label())
		}
	}
	if !utf8.ValidString(sent) && utf8.ValidString(got) && (got == replaceEachInvalid(sent) || got == strings.ToValidUTF8(sent, "\uFFFD")) {
		return RuleCharset, fmt.Sprintf("%s bytes were read as UTF-8; the invalid ones became U+FFFD", cs.Label())
	}
	if utf8.ValidString(got) {
		for _, c2 := range charsetsTried {
			if c2.Name() != cs.Name() && !c2.IsUTF8() && got == c2.Decode(sent) {
				return RuleCharset, fmt.Sprintf("%s bytes were read as %s and written as UTF-8", cs.Label(), c2.Label())
			}
		}
	}
	return RuleValueChanged, fmt.Sprintf("sent %q, got %q", text, cs.Decode(got))
}

// plusSpace reports whether got is sent with some '+' and ' ' swapped.
func plusSpace(sent, got string) (string, bool) {
	if len(sent) != len(got) || sent == got {
		return "", false
	}
	plusToSpace := false
	for i := 0; i < len(sent); i++ {
		a, b := sent[i], got[i]
		switch {
		case a == b:
		case a == '+' && b == ' ':
			plusToSpace = true
		case a == ' ' && b == '+':
		default:
			return "", false
		}
	}
	if plusToSpace {
		return "a literal '+' became a space (decoded twice, or '+' not escaped as %2B)", true
	}
	return "a space became a literal '+' ('+' not decoded as a space)", true
}

// replaceEachInvalid is what most decoders do with bytes that are not
// UTF-8: one U+FFFD per byte.
func replaceEachInvalid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func indexOf(f form.Form, name string) int {
	for i, fd := range f {
		if fd.Name == name {
			return i
		}
	}
	return -1
}

func countFatal(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Fatal {
			n++
		}
	}
	return n
}
