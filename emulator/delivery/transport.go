package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport: how a delivery reaches a listener (no proxy, the allowlist on
// every connection, no redirects) and how its answer is judged.

// NewTransport returns the transport deliveries use: no proxy, generous
// keep-alive, and connections made from localAddr when it is set (so a
// listener's source-address allowlist can be tested on loopback). tlsConfig
// may be nil (the system's roots); allow, if set, is checked on every
// connection.
func NewTransport(localAddr net.Addr, tlsConfig *tls.Config, allow *Allowlist) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: localAddr}
	dial := d.DialContext
	if allow != nil {
		dial = allow.dialer(d)
	}
	return &http.Transport{
		TLSClientConfig:     tlsConfig,
		Proxy:               nil,
		DialContext:         dial,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
	}
}

// NewClient returns the HTTP client deliveries use by default: it never
// follows redirects (a 302 is not an ack). transport may be nil.
func NewClient(transport *http.Transport) *http.Client {
	if transport == nil {
		transport = NewTransport(nil, nil, nil)
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post makes one HTTP exchange and fills in the attempt's outcome.
func (e *Engine) post(parent context.Context, client *http.Client, a *Attempt, url string, header http.Header, body []byte, ack AckPolicy, burst *Burst) {
	ctx, cancel := context.WithTimeoutCause(parent, e.cfg.AckTimeout, errAckWindow)
	defer cancel()
	start := time.Now()
	defer func() { a.Duration = time.Since(start) }()

	var reader io.Reader = bytes.NewReader(body)
	if burst != nil && len(body) > 0 {
		// The ack window starts when the burst leaves: a member waiting
		// for the others is not the listener being slow.
		held := &burstBody{burst: burst, body: body, window: e.cfg.AckTimeout}
		held.ctx, held.cancel = context.WithCancelCause(parent)
		ctx, reader = held.ctx, held
		defer held.stop()
	} else if burst != nil {
		burst.Leave()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, reader)
	if err != nil {
		a.Error = err.Error()
		return
	}
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		switch cause := context.Cause(parent); {
		case cause != nil:
			a.Error = cause.Error()
		case errors.Is(context.Cause(ctx), errAckWindow):
			a.Error = fmt.Sprintf("no answer within %s", e.cfg.AckTimeout)
		default:
			a.Error = err.Error()
		}
		return
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	head, err := readHead(resp.Body, e.cfg.ResponseLimit)
	a.Response = head
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		a.Error = fmt.Sprintf("reading the answer: %v", err)
		return
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		a.Acked = true
	case resp.StatusCode > 200 && resp.StatusCode < 300 && ack == Any2xx:
		a.Acked = true
		a.Note = fmt.Sprintf("HTTP %d taken as an ack, though only 200 is documented as one (strict mode fails it)", resp.StatusCode)
	case resp.StatusCode > 200 && resp.StatusCode < 300:
		a.Note = fmt.Sprintf("HTTP %d is not an ack: only 200 stops the resends", resp.StatusCode)
	}
}

// heads are the buffers answers are read into: most answers are empty or
// a few bytes, and a fresh buffer per delivery was a tenth of a load's
// garbage.
var heads = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// readHead reads at most limit bytes of an answer.
func readHead(body io.Reader, limit int) (string, error) {
	bp := heads.Get().(*[]byte)
	defer heads.Put(bp)
	buf := *bp
	if limit > len(buf) {
		buf = make([]byte, limit)
	}
	n, err := io.ReadFull(body, buf[:limit])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	if n == 0 {
		return "", err
	}
	return string(buf[:n]), err
}
