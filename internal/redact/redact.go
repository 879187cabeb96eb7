// Package redact hides the passwords of connection strings (a probe's or
// a store's DSN) wherever they are shown: logs, reports, replay lines and
// error messages that quote them. It knows every form ipnlab takes: a
// URL's user info (postgres://u:PASSWORD@h, also when the URL does not
// parse: a % or a space in it), a password in the query
// (?password=..., sslpassword, passwd, pwd) and keyword/value text
// (password='a b').
package redact

import (
	"regexp"
)

// Mask replaces a password.
const Mask = "[redacted]"

var (
	// The user info's password: up to the @ that ends it. A raw / ends
	// the search, so that scheme://host:port/path...@ is left alone.
	userinfo = regexp.MustCompile(`(://[^:/@\s]*:)[^@/]*@`)
	// A password parameter, in a query or keyword/value text: a quoted
	// value (with \' escapes), or up to the next separator.
	param = regexp.MustCompile(`(?i)((?:^|[?&;\s])(?:ssl)?(?:password|passwd|pass|pwd)=)('(?:[^'\\]|\\.)*'|[^&;\s#]*)`)
)

// DSN is s with every password in it replaced by Mask. s may be a DSN or
// any text holding one.
func DSN(s string) string {
	s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	return param.ReplaceAllString(s, "${1}"+Mask)
}

// Error is err with its message redacted; errors.Is and errors.As still
// see err.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{err: err}
}

type redacted struct{ err error }

func (r *redacted) Error() string { return DSN(r.err.Error()) }
func (r *redacted) Unwrap() error { return r.err }
