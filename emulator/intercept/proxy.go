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
	"slices"
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
	verifier  http.Handler
	tlsConfig *tls.Config
	conns     *connListener
	serving   chan error
	closed    closeOnce
	traffic   trafficLog
}

// NewProxy starts a proxy that hands the requests it intercepts to
// verifier (the request's Host is the PayPal host the client asked for).
// Close stops it.
func NewProxy(ca *CA, verifier http.Handler) *Proxy {
	p := &Proxy{conns: newConnListener(), serving: make(chan error, 1), tlsConfig: ca.ServerConfig(Hosts[0], Hosts...), verifier: verifier}
	p.traffic.now = time.Now
	p.srv = verifierServer(p.tlsConfig, verifier)
	// The proxy shakes hands itself (handshake), to record each outcome;
	// the server gets connections already in TLS.
	go func() { p.serving <- p.srv.Serve(p.conns) }()
	return p
}

// Traffic is what the proxy saw since t (wall time): every CONNECT,
// refused or tunnelled, and each tunnel's handshake.
func (p *Proxy) Traffic(since time.Time) Traffic { return p.traffic.since(since) }

// verifierServer serves verifier at VerifyPath over TLS.
func verifierServer(cfg *tls.Config, verifier http.Handler) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != VerifyPath {
				http.Error(w, fmt.Sprintf("ipnlab stands in for PayPal's verifier only: POST https://%s%s", r.Host, VerifyPath), http.StatusNotFound)
				return
			}
			verifier.ServeHTTP(w, r)
		}),
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
	t.srv = verifierServer(ca.ServerConfig(host, append([]string{"localhost"}, Hosts...)...), verifier)
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

// ServeHTTP answers proxy requests: CONNECT to a PayPal host on 443 is
// tunnelled to the verifier; a request for https://PAYPAL-HOST/cgi-bin/webscr
// sent to the proxy whole (absolute form, in the clear: axios does so) is
// answered by the verifier as that host; anything else is refused with a
// 403 that names the hosts it serves.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if host := strings.ToLower(r.URL.Hostname()); r.URL.Scheme == "https" && slices.Contains(Hosts, host) && (r.URL.Port() == "" || r.URL.Port() == "443") {
			p.traffic.add(TrafficEvent{Kind: Forwarded, Host: host + ":443", Client: r.RemoteAddr})
			if r.URL.Path != VerifyPath {
				http.Error(w, fmt.Sprintf("ipnlab stands in for PayPal's verifier only: POST https://%s%s", host, VerifyPath), http.StatusNotFound)
				return
			}
			r.Host = host
			p.verifier.ServeHTTP(w, r)
			return
		}
		p.traffic.add(TrafficEvent{Kind: Refused, Host: r.URL.Host, Client: r.RemoteAddr, Detail: r.Method + " " + r.URL.Scheme + " through the proxy: only CONNECT, or https:// to PayPal's verify hosts, is served"})
		refuse(w, fmt.Sprintf("%s %s: ipnlab's proxy only serves HTTPS to PayPal's verify hosts (CONNECT, or the https:// URL in absolute form)", r.Method, r.URL.Redacted()))
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "443"
	}
	host = strings.ToLower(host)
	if !slices.Contains(Hosts, host) || port != "443" {
		p.traffic.add(TrafficEvent{Kind: Refused, Host: r.Host, Client: r.RemoteAddr, Detail: "not one of PayPal's verify hosts on port 443"})
		refuse(w, fmt.Sprintf("CONNECT %s: ipnlab's proxy reaches nothing but the emulator's verifier", r.Host))
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

func refuse(w http.ResponseWriter, why string) {
	http.Error(w, why+"; it serves "+strings.Join(Hosts, ", ")+" on port 443 (nothing leaves this machine)", http.StatusForbidden)
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
