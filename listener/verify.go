package listener

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// Verification: posting a PayPal message back, exactly as it came.

// postback posts the exact bytes received back to the verifier and returns
// its verdict. Only HTTP 200 with a body of exactly VERIFIED or INVALID
// counts: VERIFIED with a 500, "VERIFIED\n" or an HTML page are errors.
func (l *Listener) postback(ctx context.Context, raw []byte) (string, error) {
	if l.flaw.NoPostback {
		return "VERIFIED", nil
	}
	if !l.flaw.AckAfterVerify {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Verify.Timeout)
		defer cancel()
	}
	if rewrite := l.flaw.RewritePostback; rewrite != nil {
		raw = rewrite(raw)
	}
	body := make([]byte, 0, len(raw)+21)
	body = append(append(body, "cmd=_notify-validate&"...), raw...)
	verifyURL := l.cfg.VerifyURL
	if l.flaw.WrongVerifyURL {
		verifyURL = "http://127.0.0.1:9/cgi-bin/webscr"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, verifyURL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", l.cfg.Verify.UserAgent)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("postback: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return "", fmt.Errorf("postback: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK && !l.flaw.IgnoreStatus {
		return "", fmt.Errorf("%w: HTTP %d %q", errVerifier, resp.StatusCode, answer)
	}
	if l.flaw.LooseVerified && bytes.Contains(answer, []byte("VERIFIED")) {
		return "VERIFIED", nil
	}
	switch v := string(answer); {
	case v == "INVALID" && l.flaw.RetryInvalid:
		return "", fmt.Errorf("%w: INVALID taken for an error", errVerifier)
	case v == "VERIFIED", v == "INVALID":
		return v, nil
	default:
		return "", fmt.Errorf("%w: %q (want exactly VERIFIED or INVALID)", errVerifier, v)
	}
}
