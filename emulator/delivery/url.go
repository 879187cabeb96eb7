package delivery

import (
	"errors"
	"fmt"
	"net/url"
)

// ErrBadURL is wrapped when a delivery target is not an absolute http(s) URL.
var ErrBadURL = errors.New("bad delivery URL")

// CheckURL reports whether raw can be delivered to.
func CheckURL(raw string) error { return checkURL(raw) }

func checkURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrBadURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %q: scheme must be http or https", ErrBadURL, raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: %q: no host", ErrBadURL, raw)
	}
	return nil
}
