package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
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

// Reachable reports whether something accepts TCP connections where raw
// points (its port, or the scheme's), within ctx and 5 s: a harness checks
// its target before a run, so a typo is an error, not a report of failures.
func Reachable(ctx context.Context, raw string) error {
	if err := checkURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}
