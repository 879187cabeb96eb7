package orders

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Open reads a source's spec, as --orders takes it:
//
//	cmd:COMMAND ARGS...  a command, run by sh -c, given the request as JSON on
//	                     standard input (and IPNLAB_ORDER_AMOUNT,
//	                     IPNLAB_ORDER_CURRENCY), printing the order as JSON
//	http://... https://  an endpoint, POSTed the request as JSON, answering
//	                     the order as JSON
//
// A SQL source is the probe map's open_order query (package sqlprobe).
func Open(spec string) (Source, error) {
	switch {
	case strings.HasPrefix(spec, "cmd:"):
		line := strings.TrimSpace(strings.TrimPrefix(spec, "cmd:"))
		if line == "" {
			return nil, fmt.Errorf("%w cmd: the command is empty", ErrSource)
		}
		return &Command{Line: line, Timeout: 30 * time.Second}, nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w %s: want http://host:port/path", ErrSource, spec)
		}
		return &Endpoint{URL: spec, Client: &http.Client{Timeout: 30 * time.Second}}, nil
	}
	return nil, fmt.Errorf("%w %q: want cmd:COMMAND, http://URL, or sql (the probe map's open_order query)", ErrSource, spec)
}

// requestJSON is the request as sources read it: the amount as text.
func requestJSON(req Request) []byte {
	raw, _ := json.Marshal(map[string]string{"amount": req.Amount.String(), "currency": req.Currency})
	return raw
}

// decode reads an order from a source's answer.
func decode(src Source, raw []byte) (Order, error) {
	var a answer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Order{}, sourceErr(src, fmt.Errorf("want one JSON object {\"ref\", \"amount\", \"currency\", \"field\"}: %v (it answered %q)", err, excerpt(raw)))
	}
	o, err := a.order()
	if err != nil {
		return Order{}, sourceErr(src, err)
	}
	return o, nil
}

func excerpt(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Command is a source that runs a command for each order.
type Command struct {
	Line    string
	Timeout time.Duration
}

func (c *Command) String() string { return "cmd:" + c.Line }

// New runs the command.
func (c *Command) New(ctx context.Context, req Request) (Order, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", c.Line)
	cmd.Stdin = bytes.NewReader(requestJSON(req))
	cmd.Env = append(os.Environ(), "IPNLAB_ORDER_AMOUNT="+req.Amount.String(), "IPNLAB_ORDER_CURRENCY="+req.Currency)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Order{}, sourceErr(c, fmt.Errorf("%v: %s", err, excerpt(errOut.Bytes())))
	}
	return decode(c, out.Bytes())
}

// Endpoint is a source that asks an HTTP endpoint for each order.
type Endpoint struct {
	URL    string
	Client *http.Client
}

func (e *Endpoint) String() string { return e.URL }

// New POSTs the request.
func (e *Endpoint) New(ctx context.Context, req Request) (Order, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(requestJSON(req)))
	if err != nil {
		return Order{}, sourceErr(e, err)
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := e.Client.Do(r)
	if err != nil {
		return Order{}, sourceErr(e, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Order{}, sourceErr(e, err)
	}
	if resp.StatusCode/100 != 2 {
		return Order{}, sourceErr(e, fmt.Errorf("HTTP %d: %s", resp.StatusCode, excerpt(raw)))
	}
	return decode(e, raw)
}
