package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrNotAllowed is wrapped when a delivery target is outside the allowlist.
var ErrNotAllowed = errors.New("target not in the delivery allowlist")

// Allowlist limits where deliveries may go, so an emulator shared on a
// network cannot be used to probe it. Entries are networks (127.0.0.0/8),
// addresses (10.1.2.3, ::1) and host names (listener.ci, *.ci.example); a
// name entry allows the name whatever it resolves to, while any other
// target must resolve to an allowed network. The check is made when a
// target is given (a clear 400) and again on every connection, on the
// address actually dialled (so DNS cannot smuggle a target in later).
type Allowlist struct {
	nets  []netip.Prefix
	names []string // lower case; "*.x" matches any subdomain of x
	// resolve looks names up; the default resolver, bounded in time.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParseAllowlist reads allowlist entries; an empty list allows nothing.
func ParseAllowlist(entries []string) (*Allowlist, error) {
	a := &Allowlist{resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case e == "":
			return nil, fmt.Errorf("allowlist: empty entry")
		case strings.Contains(e, "://"):
			return nil, fmt.Errorf("allowlist entry %q: not a network, an address or a host name (give the host, not a URL)", raw)
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowlist entry %q: %w", raw, err)
			}
			a.nets = append(a.nets, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				a.nets = append(a.nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if !validName(strings.TrimPrefix(e, "*.")) {
				return nil, fmt.Errorf("allowlist entry %q: not a network, an address or a host name", raw)
			}
			a.names = append(a.names, e)
		}
	}
	return a, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// String lists the entries, for logs and errors.
func (a *Allowlist) String() string {
	out := make([]string, 0, len(a.nets)+len(a.names))
	for _, n := range a.nets {
		out = append(out, n.String())
	}
	return strings.Join(append(out, a.names...), ", ")
}

func (a *Allowlist) nameAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, n := range a.names {
		if n == host || strings.HasPrefix(n, "*.") && strings.HasSuffix(host, n[1:]) {
			return true
		}
	}
	return false
}

func (a *Allowlist) addrAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range a.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckURL reports whether raw's host is allowed: a name entry matches it,
// or it is (or resolves to) an address in an allowed network.
func (a *Allowlist) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	host := u.Hostname()
	if a.nameAllowed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if a.addrAllowed(ip) {
			return nil
		}
		return fmt.Errorf("%w: %s (allowed: %s)", ErrNotAllowed, host, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := a.resolve(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: %s does not resolve: %v", ErrNotAllowed, host, err)
	}
	for _, ip := range ips {
		if a.addrAllowed(ip) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s resolves to %v (allowed: %s)", ErrNotAllowed, host, ips, a)
}

// dialer wraps d so every connection is checked on the address dialled.
func (a *Allowlist) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	checked := *d
	checked.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNotAllowed, address)
		}
		if !a.addrAllowed(ap.Addr()) {
			return fmt.Errorf("%w: %s (allowed: %s)", ErrNotAllowed, ap.Addr(), a)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && a.nameAllowed(host) {
			return d.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}
