// Package client is a Go client for the emulator's control API, used by the
// CLI and by suites that drive an emulator in another process or container.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
)

// DefaultURL is where `ipnlab serve` listens by default.
const DefaultURL = "http://127.0.0.1:8700"

// APIError is a 4xx/5xx answer from the emulator.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("emulator: %s (HTTP %d)", e.Message, e.Status) }

// ErrUnreachable is wrapped when no emulator answers at the base URL.
var ErrUnreachable = errors.New("emulator unreachable")

// Client talks to one emulator.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// New returns a client for the emulator at base ("http://127.0.0.1:8700").
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("emulator URL %q: want http://host:port", base)
	}
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// WithToken returns a copy of c that sends the emulator's API token.
func (c *Client) WithToken(token string) *Client {
	d := *c
	d.token = token
	return &d
}

// URL is the emulator's base URL.
func (c *Client) URL() string { return c.base }

// VerifyURL is where listeners post back.
func (c *Client) VerifyURL() string { return c.base + "/cgi-bin/webscr" }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
			e.Error.Message = strings.TrimSpace(string(raw))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error.Message}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// Health checks that the emulator answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "GET", "/healthz", nil, &map[string]any{})
}

// SendPayPal creates a PayPal notification.
func (c *Client) SendPayPal(ctx context.Context, req api.SendRequest) (api.MessageView, error) {
	var v api.MessageView
	return v, c.do(ctx, "POST", "/api/v1/paypal/notifications", req, &v)
}

// SendLifecycle sends a fixture lifecycle, each step at its clock offset.
func (c *Client) SendLifecycle(ctx context.Context, req api.LifecycleRequest) (api.LifecyclePlan, error) {
	var plan api.LifecyclePlan
	return plan, c.do(ctx, "POST", "/api/v1/paypal/lifecycles", req, &plan)
}

// SendPayDo creates PayDo notifications (copies and follow-ups included).
func (c *Client) SendPayDo(ctx context.Context, req api.PayDoRequest) ([]api.MessageView, error) {
	var out struct {
		Messages []api.MessageView `json:"messages"`
	}
	return out.Messages, c.do(ctx, "POST", "/api/v1/paydo/notifications", req, &out)
}

// RegisterPayDo sets a project's checkout IPN URL or a user's transfer IPN
// URL (give one of project and user); url "" removes it.
func (c *Client) RegisterPayDo(ctx context.Context, project, user, url string) error {
	path := "/api/v1/paydo/projects/" + urlPath(project) + "/ipn-url"
	if user != "" {
		path = "/api/v1/paydo/users/" + urlPath(user) + "/transfer-ipn-url"
	}
	if url == "" {
		return c.do(ctx, "DELETE", path, nil, nil)
	}
	return c.do(ctx, "PUT", path, map[string]string{"url": url}, nil)
}

// SetPayDoToken sets the token a project's PayDo status lookups must
// carry; token "" removes it.
func (c *Client) SetPayDoToken(ctx context.Context, project, token string) error {
	path := "/api/v1/paydo/projects/" + urlPath(project) + "/api-token"
	if token == "" {
		return c.do(ctx, "DELETE", path, nil, nil)
	}
	return c.do(ctx, "PUT", path, map[string]string{"token": token}, nil)
}

func urlPath(s string) string { return url.PathEscape(s) }

// Providers lists the emulator's providers, built-in ones first, with
// what each sends.
func (c *Client) Providers(ctx context.Context) ([]api.ProviderInfo, error) {
	var out struct {
		Providers []api.ProviderInfo `json:"providers"`
	}
	return out.Providers, c.do(ctx, "GET", "/api/v1/providers", nil, &out)
}

// Notify asks provider for messages of one kind (any provider that
// sends: PayPal, PayDo or a plug-in) and returns them once their first
// attempts were made.
func (c *Client) Notify(ctx context.Context, provider string, req api.NotifyRequest) ([]api.MessageView, error) {
	var out struct {
		Messages []api.MessageView `json:"messages"`
	}
	return out.Messages, c.do(ctx, "POST", "/api/v1/providers/"+url.PathEscape(provider)+"/messages", req, &out)
}

// Message reads one message with its attempts and postbacks.
func (c *Client) Message(ctx context.Context, id string) (api.MessageView, error) {
	var v api.MessageView
	return v, c.do(ctx, "GET", "/api/v1/messages/"+url.PathEscape(id), nil, &v)
}

// Settle waits until message id's outcome is settled (see
// api.Summary.Settled) or ctx ends, following the emulator's events rather
// than polling, and returns the message as it then is, with ctx's error if
// it ended first.
func (c *Client) Settle(ctx context.Context, id string) (api.MessageView, error) {
	clk, err := c.Clock(ctx)
	if err != nil {
		return api.MessageView{}, err
	}
	var after uint64
	for {
		v, err := c.Message(ctx, id)
		if err != nil || v.Settled(clk.Mode == "manual") {
			return v, err
		}
		_, last, err := c.Poll(ctx, after, "", id, 10*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return v, ctx.Err()
			}
			return v, err
		}
		after = last
	}
}

// LastEvent is the sequence number of the emulator's newest event: follow
// from it (Poll) to see only what happens next.
func (c *Client) LastEvent(ctx context.Context) (uint64, error) {
	var out struct {
		Last uint64 `json:"last_event"`
	}
	return out.Last, c.do(ctx, "GET", "/api/v1/messages?limit=1", nil, &out)
}

// History lists messages; filter keys are the API's query parameters.
func (c *Client) History(ctx context.Context, filter url.Values) ([]api.Summary, int, error) {
	var out struct {
		Messages []api.Summary `json:"messages"`
		Total    int           `json:"total"`
	}
	path := "/api/v1/messages"
	if len(filter) > 0 {
		path += "?" + filter.Encode()
	}
	return out.Messages, out.Total, c.do(ctx, "GET", path, nil, &out)
}

// Resend resends one message by hand.
func (c *Client) Resend(ctx context.Context, id string, req api.ResendRequest) (api.MessageView, error) {
	var v api.MessageView
	return v, c.do(ctx, "POST", "/api/v1/messages/"+url.PathEscape(id)+"/resend", req, &v)
}

// ResendAll resends every message matching req.Status (default Failed)
// created since req.Since, and returns their ids, and those it refused
// with why (the others went).
func (c *Client) ResendAll(ctx context.Context, req api.ResendRequest) (resent []string, refused []api.ResendRefusal, err error) {
	var out struct {
		Resent  []string            `json:"resent"`
		Refused []api.ResendRefusal `json:"refused"`
	}
	err = c.do(ctx, "POST", "/api/v1/messages/resend", req, &out)
	return out.Resent, out.Refused, err
}

// Postbacks lists the verifier's records ("" for all messages), reading
// every page.
func (c *Client) Postbacks(ctx context.Context, messageID string) ([]api.Postback, error) {
	q := url.Values{}
	if messageID != "" {
		q.Set("message_id", messageID)
	}
	return c.postbacks(ctx, q)
}

// UnknownPostbacks lists the postbacks that matched no message the
// emulator sent, each with its INVALID verdict and the reason.
func (c *Client) UnknownPostbacks(ctx context.Context) ([]api.Postback, error) {
	return c.postbacks(ctx, url.Values{"unknown": {"true"}})
}

func (c *Client) postbacks(ctx context.Context, q url.Values) ([]api.Postback, error) {
	var all []api.Postback
	after := 0
	for {
		var out struct {
			Postbacks []api.Postback `json:"postbacks"`
			Next      int            `json:"next"`
		}
		q.Set("limit", "1000")
		q.Set("after", strconv.Itoa(after))
		if err := c.do(ctx, "GET", "/api/v1/postbacks?"+q.Encode(), nil, &out); err != nil {
			return all, err
		}
		all = append(all, out.Postbacks...)
		if out.Next == 0 {
			return all, nil
		}
		after = out.Next
	}
}

// Clock reads the emulator's clock.
func (c *Client) Clock(ctx context.Context) (api.ClockView, error) {
	var v api.ClockView
	return v, c.do(ctx, "GET", "/api/v1/clock", nil, &v)
}

// Advance moves a manual clock by a duration such as "90s" or "4d".
func (c *Client) Advance(ctx context.Context, duration string) (api.ClockView, error) {
	var v api.ClockView
	return v, c.do(ctx, "POST", "/api/v1/clock/advance", map[string]string{"duration": duration}, &v)
}

// RunUntilIdle fires every scheduled delivery within limit ("" for 30d).
func (c *Client) RunUntilIdle(ctx context.Context, limit string) (api.ClockView, error) {
	var v api.ClockView
	var in any
	if limit != "" {
		in = map[string]string{"limit": limit}
	}
	return v, c.do(ctx, "POST", "/api/v1/clock/run-until-idle", in, &v)
}

// Profile reads the IPN settings.
func (c *Client) Profile(ctx context.Context) (api.Profile, error) {
	var p api.Profile
	return p, c.do(ctx, "GET", "/api/v1/paypal/profile", nil, &p)
}

// SetProfile changes the IPN settings.
func (c *Client) SetProfile(ctx context.Context, p api.Profile) (api.Profile, error) {
	var out api.Profile
	return out, c.do(ctx, "PUT", "/api/v1/paypal/profile", p, &out)
}

// SetFault injects a verifier fault for messageID ("" for every message).
func (c *Client) SetFault(ctx context.Context, messageID string, f api.FaultRequest) error {
	return c.do(ctx, "PUT", faultPath(messageID), f, nil)
}

// ClearFault removes a fault set by SetFault.
func (c *Client) ClearFault(ctx context.Context, messageID string) error {
	return c.do(ctx, "DELETE", faultPath(messageID), nil, nil)
}

func faultPath(messageID string) string {
	if messageID == "" {
		return "/api/v1/paypal/fault"
	}
	return "/api/v1/messages/" + url.PathEscape(messageID) + "/fault"
}

// Kinds lists the fixture kinds the emulator can generate.
func (c *Client) Kinds(ctx context.Context) ([]api.Kind, error) {
	var out struct {
		Kinds []api.Kind `json:"kinds"`
	}
	return out.Kinds, c.do(ctx, "GET", "/api/v1/fixtures/kinds", nil, &out)
}

// Poll waits up to timeout for events after seq matching types ("" for
// all) and messageID ("" for all). It returns the events and the sequence
// number to continue from.
func (c *Client) Poll(ctx context.Context, after uint64, types, messageID string, timeout time.Duration) ([]api.Event, uint64, error) {
	q := url.Values{"after": {fmt.Sprint(after)}, "timeout": {timeout.String()}}
	if types != "" {
		q.Set("type", types)
	}
	if messageID != "" {
		q.Set("message_id", messageID)
	}
	var out struct {
		Events []api.Event `json:"events"`
		Last   uint64      `json:"last"`
	}
	err := c.do(ctx, "GET", "/api/v1/events/poll?"+q.Encode(), nil, &out)
	return out.Events, out.Last, err
}

// ScenarioRun asks a running emulator to run a scenario: a bundled one,
// or Scenario (YAML) of the caller's own, against a listener.
type ScenarioRun struct {
	// Endpoints are the listener's, by provider name; PayPalURL and
	// PayDoURL are short for Endpoints["paypal"] and ["paydo"].
	Endpoints map[string]string `json:"endpoints,omitempty"`
	PayPalURL string            `json:"paypal_url,omitempty"`
	PayDoURL  string            `json:"paydo_url,omitempty"`
	ProbeURL  string            `json:"probe_url,omitempty"`
	Seed      api.Seed          `json:"seed,omitempty"`
	Scenario  string            `json:"scenario,omitempty"`
}

// ScenarioResult is what the run found, with the log of its steps.
type ScenarioResult struct {
	Scenario string   `json:"scenario"`
	Status   string   `json:"status"`
	Message  string   `json:"message"`
	Seed     api.Seed `json:"seed"`
	Evidence []string `json:"evidence"`
	Seconds  float64  `json:"seconds"`
	Log      []string `json:"log"`
}

// RunScenario runs the scenario name (bundled, a check ID, or run's
// own) in the emulator, one at a time; its messages appear in its History.
func (c *Client) RunScenario(ctx context.Context, name string, run ScenarioRun) (ScenarioResult, error) {
	var res ScenarioResult
	err := c.do(ctx, http.MethodPost, "/api/v1/scenarios/"+urlPath(name)+"/run", run, &res)
	return res, err
}

// Scenarios names the scenarios the emulator runs (none: it runs none);
// it also tells an ipnlab emulator from any other server.
func (c *Client) Scenarios(ctx context.Context) ([]string, error) {
	var list struct {
		Scenarios *[]struct {
			Name string `json:"name"`
		} `json:"scenarios"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/scenarios", nil, &list); err != nil {
		return nil, err
	}
	if list.Scenarios == nil {
		return nil, fmt.Errorf("%w at %s: GET /api/v1/scenarios answered without a list of scenarios: not an ipnlab emulator", ErrUnreachable, c.base)
	}
	names := make([]string, 0, len(*list.Scenarios))
	for _, s := range *list.Scenarios {
		names = append(names, s.Name)
	}
	return names, nil
}
