package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Verification: asking PayPal whether a message is genuine.

// Verifier asks PayPal whether a message is genuine, given the bytes
// exactly as they came: it answers VERIFIED or INVALID, or an error when
// it got no usable answer (the listener then tries again later). The
// listener's is a Postback; Config.WrapVerifier decorates it (a team's
// own specs may record or fault postbacks; the mutant gallery's
// verification bugs are decorations, package listener/flawed).
type Verifier interface {
	Verify(ctx context.Context, raw []byte) (verdict string, err error)
}

// ErrVerifier is wrapped for answers that are neither VERIFIED nor
// INVALID: the verification is tried again.
var ErrVerifier = errors.New("verifier gave no usable answer")

// Postback is the reference Verifier: it posts the exact bytes received
// back to URL after cmd=_notify-validate.
type Postback struct {
	URL       string
	Client    *http.Client
	UserAgent string
	// Timeout bounds each postback (0: only the context does).
	Timeout time.Duration
}

// Verify posts raw back and reads the answer with Judge.
func (p Postback) Verify(ctx context.Context, raw []byte) (string, error) {
	status, answer, err := p.Exchange(ctx, raw)
	if err != nil {
		return "", err
	}
	return Judge(status, answer)
}

// Exchange posts raw back and returns the verifier's HTTP status and the
// first 64 bytes of its answer.
func (p Postback) Exchange(ctx context.Context, raw []byte) (status int, answer []byte, err error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	body := make([]byte, 0, len(raw)+21)
	body = append(append(body, "cmd=_notify-validate&"...), raw...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", p.UserAgent)
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("postback: %w", err)
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("postback: reading the answer: %w", err)
	}
	return resp.StatusCode, answer, nil
}

// Judge reads a verifier's answer as the reference listener does: only
// HTTP 200 with a body of exactly VERIFIED or INVALID counts; VERIFIED
// with a 500, "VERIFIED\n" or an HTML page are ErrVerifier.
func Judge(status int, answer []byte) (string, error) {
	if status != http.StatusOK {
		return "", fmt.Errorf("%w: HTTP %d %q", ErrVerifier, status, answer)
	}
	switch v := string(answer); v {
	case "VERIFIED", "INVALID":
		return v, nil
	default:
		return "", fmt.Errorf("%w: %q (want exactly VERIFIED or INVALID)", ErrVerifier, v)
	}
}

// postback verifies raw with the listener's verifier.
func (l *Listener) postback(ctx context.Context, raw []byte) (string, error) {
	return l.verifier.Verify(ctx, raw)
}
