package intercept

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// VerifyPath is the one path the intercepted hosts serve.
const VerifyPath = "/cgi-bin/webscr"

// Proxy answers CONNECT for PayPal's verify hosts and serves what comes
// through the tunnel with Verifier, over TLS with the CA's certificates.
// It never dials anything.
type Proxy struct {
	srv       *http.Server
	sites     map[string]http.Handler // by host
	hosts     []string                // the hosts served, in the sites' order
	uncovered map[string]string       // hosts a site asked for that the CA does not cover, and why
	tlsConfig *tls.Config
	conns     *connListener
	serving   chan error
	closed    closeOnce
	traffic   trafficLog
}

// A Site is what the proxy stands in for: hostnames (on port 443) and
// the handler that serves them (the request's Host is the one the client
// asked for).
type Site struct {
	Hosts   []string
	Handler http.Handler
}

// VerifierSite is PayPal's verify hosts, serving verifier at VerifyPath
// and nothing else.
func VerifierSite(verifier http.Handler) Site {
	return Site{Hosts: Hosts, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != VerifyPath {
			http.Error(w, fmt.Sprintf("ipnlab stands in for PayPal's verifier only: POST https://%s%s", r.Host, VerifyPath), http.StatusNotFound)
			return
		}
		verifier.ServeHTTP(w, r)
	})}
}

// NewProxy starts a proxy that hands the requests it intercepts to the
// site of the host the client asked for. A host the CA does not cover (a
// CA made before the emulator stood in for it) is refused, saying so.
// Close stops it.
func NewProxy(ca *CA, sites ...Site) *Proxy {
	p := &Proxy{conns: newConnListener(), serving: make(chan error, 1), sites: map[string]http.Handler{}, uncovered: map[string]string{}}
	for _, s := range sites {
		for _, h := range s.Hosts {
			h = strings.ToLower(h)
			if !ca.Permits(h) {
				p.uncovered[h] = fmt.Sprintf("the CA in %s was made before ipnlab stood in for %s, and does not cover it: to make a new one, remove %s, then trust the new %s", ca.Dir(), h, ca.Dir(), CertFile)
				continue
			}
			p.sites[h] = s.Handler
			p.hosts = append(p.hosts, h)
		}
	}
	fallback := "localhost"
	if len(p.hosts) > 0 {
		fallback = p.hosts[0]
	}
	p.tlsConfig = ca.ServerConfig(fallback, p.hosts...)
	p.traffic.now = time.Now
	p.srv = tlsServer(p.tlsConfig, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		h, ok := p.sites[strings.ToLower(host)]
		if !ok {
			http.Error(w, fmt.Sprintf("ipnlab stands in for %s only", strings.Join(p.hosts, ", ")), http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	}))
	// The proxy shakes hands itself (handshake), to record each outcome;
	// the server gets connections already in TLS.
	go func() { p.serving <- p.srv.Serve(p.conns) }()
	return p
}

// Traffic is what the proxy saw since t (wall time): every CONNECT,
// refused or tunnelled, and each tunnel's handshake.
func (p *Proxy) Traffic(since time.Time) Traffic { return p.traffic.since(since) }

// tlsServer serves h over TLS, as PayPal's hosts do.
func tlsServer(cfg *tls.Config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// HTTP/1.1 only, as PayPal's verifier; and a failed handshake (a
		// client that does not trust the CA) is the client's to report.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(io.Discard, "", 0),
	}
}

// TLSVerifier serves the verifier over plain TLS (no proxy), for clients
// that take a verify URL but insist on https.
type TLSVerifier struct {
	srv     *http.Server
	ln      net.Listener
	serving chan error
	closed  closeOnce
}

// ServeTLS serves verifier at https://ADDR/cgi-bin/webscr on ln, with a
// certificate from ca for ln's host, localhost and PayPal's hosts.
func ServeTLS(ca *CA, ln net.Listener, verifier http.Handler) *TLSVerifier {
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	t := &TLSVerifier{ln: ln, serving: make(chan error, 1)}
	t.srv = tlsServer(ca.ServerConfig(host, append([]string{"localhost"}, Hosts...)...), VerifierSite(verifier).Handler)
	go func() { t.serving <- t.srv.ServeTLS(ln, "", "") }()
	return t
}

// URL is the verify URL it serves.
func (t *TLSVerifier) URL() string { return "https://" + t.ln.Addr().String() + VerifyPath }

// Close stops it.
func (t *TLSVerifier) Close() error { return t.closed.do(t.srv, t.serving) }

// IsProxyRequest reports whether r is meant for a proxy: a CONNECT, or a
// request in absolute form (http://host/path).
func IsProxyRequest(r *http.Request) bool {
	return r.Method == http.MethodConnect || r.URL.IsAbs()
}

// ServeHTTP answers proxy requests: CONNECT to a served host on 443 is
// tunnelled to its site; a request for https://HOST/... sent to the proxy
// whole (absolute form, in the clear: axios does so) is answered by the
// site as that host; anything else is refused with a 403 that names the
// hosts it serves.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		host := strings.ToLower(r.URL.Hostname())
		if h, ok := p.sites[host]; ok && r.URL.Scheme == "https" && (r.URL.Port() == "" || r.URL.Port() == "443") {
			p.traffic.add(TrafficEvent{Kind: Forwarded, Host: host + ":443", Client: r.RemoteAddr})
			r.Host = host
			h.ServeHTTP(w, r)
			return
		}
		why := r.Method + " " + r.URL.Scheme + " through the proxy: only CONNECT, or https:// to the hosts it stands in for, is served"
		if u, ok := p.uncovered[host]; ok {
			why = u
		}
		p.traffic.add(TrafficEvent{Kind: Refused, Host: r.URL.Host, Client: r.RemoteAddr, Detail: why})
		p.refuse(w, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Redacted(), why))
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "443"
	}
	host = strings.ToLower(host)
	if _, ok := p.sites[host]; !ok || port != "443" {
		why := "not one of the hosts it stands in for, on port 443"
		if u, ok := p.uncovered[host]; ok {
			why = u
		}
		p.traffic.add(TrafficEvent{Kind: Refused, Host: r.Host, Client: r.RemoteAddr, Detail: why})
		p.refuse(w, fmt.Sprintf("CONNECT %s: ipnlab's proxy reaches nothing but the emulator (%s)", r.Host, why))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "this connection cannot be tunnelled", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := rw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil || rw.Flush() != nil {
		conn.Close()
		return
	}
	// Bytes the client sent after CONNECT (the TLS hello, if it did not
	// wait) are in rw's reader.
	tc, ok := p.handshake(&bufferedConn{Conn: conn, r: rw.Reader}, host+":"+port, r.RemoteAddr)
	if ok && !p.conns.put(tc) {
		tc.Close()
	}
}

func (p *Proxy) refuse(w http.ResponseWriter, why string) {
	http.Error(w, why+"; it serves "+strings.Join(p.hosts, ", ")+" on port 443 (nothing leaves this machine)", http.StatusForbidden)
}

// Close stops the proxy and the tunnels it serves.
func (p *Proxy) Close() error { return p.closed.do(p.srv, p.serving) }

// closeOnce closes a server and waits for its Serve, once: later calls
// return the first one's error.
type closeOnce struct {
	once sync.Once
	err  error
}

func (c *closeOnce) do(srv *http.Server, serving chan error) error {
	c.once.Do(func() {
		c.err = srv.Close()
		if serr := <-serving; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) && c.err == nil {
			c.err = serr
		}
	})
	return c.err
}

// bufferedConn is a hijacked connection read through the reader that
// may already hold its first bytes.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// connListener is a net.Listener fed with tunnelled connections.
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) put(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return tunnelAddr{} }

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "tunnel" }
func (tunnelAddr) String() string  { return "ipnlab-intercept" }
