package paypal

import (
	_ "embed"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/internal/shell"
)

// PayPal as a provider of the emulator (package plugin): its verifier and
// control API, generated messages and lifecycles, History details, the
// judgement of a message by its postbacks. The emulator registers it like
// any plug-in, with Factory.

//go:embed openapi.yaml
var openapi []byte

// Options are what the emulator tells the fake PayPal beyond its
// Settings.
type Options struct {
	// Observe, if set, hears of every postback.
	Observe func(PostbackRecord)
	// NoEvents publishes no postback events (a load test's emulator).
	NoEvents bool
	// Secrets are values the verifier never shows back (the API token).
	Secrets []string
}

// Plugin is the fake PayPal plugged into one emulator.
type Plugin struct {
	host     plugin.Host
	svc      *Service
	metrics  *Metrics
	settings Settings
	opts     Options
}

// Factory makes the fake PayPal for one emulator, with settings s (its
// verify mode and profile checked and defaulted by the emulator).
func Factory(s Settings, o Options) plugin.Factory {
	return func(h plugin.Host) (plugin.Provider, error) {
		pl := &Plugin{host: h, settings: s, opts: o}
		var err error
		if pl.metrics, err = NewMetrics(h.Metrics); err != nil {
			return nil, err
		}
		schedule := DefaultSchedule()
		if s.Retries > 0 {
			schedule.MaxRetries = s.Retries
		}
		pl.svc, err = New(Config{
			Clock: h.Clock, Engine: h.Engine, Mode: s.Verify, Profile: s.Profile,
			Schedule: schedule, OnPostback: pl.onPostback, Journal: h.Journal, OnError: h.Report,
			Secrets: o.Secrets, Claim: s.ClaimVerifySign,
		})
		if err != nil {
			return nil, err
		}
		return pl, nil
	}
}

// Service is the fake PayPal's state: messages, postbacks, profile,
// faults.
func (pl *Plugin) Service() *Service { return pl.svc }

func (*Plugin) Name() string { return Provider }

func (*Plugin) Title() string { return "PayPal" }

func (pl *Plugin) Routes() []plugin.Route {
	return []plugin.Route{
		// The verifier takes every method so that a wrong one is recorded.
		{Pattern: "/cgi-bin/webscr", Handler: pl.svc, Public: true},
		plugin.APIRoute("POST", "/api/v1/paypal/notifications", pl.postNotification),
		plugin.APIRoute("POST", "/api/v1/paypal/lifecycles", pl.postLifecycle),
		plugin.APIRoute("GET", "/api/v1/paypal/profile", pl.getProfile),
		plugin.APIRoute("PUT", "/api/v1/paypal/profile", pl.putProfile),
		plugin.APIRoute("GET", "/api/v1/paypal/fault", pl.getFault),
		plugin.APIRoute("PUT", "/api/v1/paypal/fault", pl.putFault),
		plugin.APIRoute("DELETE", "/api/v1/paypal/fault", pl.deleteFault),
		plugin.APIRoute("GET", "/api/v1/messages/{id}/fault", pl.getFault),
		plugin.APIRoute("PUT", "/api/v1/messages/{id}/fault", pl.putFault),
		plugin.APIRoute("DELETE", "/api/v1/messages/{id}/fault", pl.deleteFault),
		plugin.APIRoute("GET", "/api/v1/postbacks", pl.listPostbacks),
		plugin.APIRoute("GET", "/api/v1/fixtures/paypal/{kind}", pl.previewPayPal),
	}
}

func (*Plugin) OpenAPI() []byte { return openapi }

// HTTPSHosts are PayPal's verify hosts, which the intercepting proxy
// answers with the verifier (emulator.Intercepted).
func (*Plugin) HTTPSHosts() []string { return intercept.Hosts }

// DefaultEndpoint: the profile's notify_url.
func (pl *Plugin) DefaultEndpoint() string { return pl.svc.Profile().NotifyURL }

func (pl *Plugin) Restore() (plugin.RestoredCounts, error) {
	n, postbacks, err := pl.svc.Restore()
	return plugin.NonZero(plugin.RestoredCounts{"messages": n, "postbacks": postbacks}), err
}

func (*Plugin) ClientFor(string) (*http.Client, error) { return nil, nil }

// Describe: the message's fields in its charset, its postbacks, and the
// command that makes it again from its seed.
func (pl *Plugin) Describe(id string, v *api.MessageView) {
	m, ok := pl.svc.Message(id)
	if !ok {
		return
	}
	v.Charset, v.Sandbox, v.Body, v.Seed = m.Charset.Label(), m.Sandbox, string(m.Body), api.Seed(m.Seed)
	for _, fd := range m.Fields {
		v.Fields = append(v.Fields, api.FieldView{Name: m.Charset.Decode(fd.Name), Value: m.Charset.Decode(fd.Value), Raw: form.Escape(fd.Value)})
	}
	v.Postbacks = Wire(pl.svc.Postbacks(id))
	v.Remake = remake(*v)
}

// Resend: PayPal's carry resend=true, to the URL asked, the first one, or
// the profile's.
func (pl *Plugin) Resend(id string, req api.ResendRequest) error {
	_, err := pl.svc.Resend(id, req.URL, req.UseProfileURL)
	return err
}

func (pl *Plugin) Forget(ids []string) { pl.svc.Forget(ids) }

// Confirmations: a PayPal listener posts every message back.
func (pl *Plugin) Confirmations(id string) int { return len(pl.svc.Postbacks(id)) }

// Notify: a generated message of one of package generate's kinds, n.Set
// giving fields their text (sorted by name: a new field is appended in
// that order).
func (pl *Plugin) Notify(n plugin.Notify) ([]api.MessageView, error) {
	req := api.SendRequest{Kind: n.Kind, NotifyURL: n.NotifyURL, Seed: api.Seed(n.Seed), Copies: n.Copies}
	for _, name := range slices.Sorted(maps.Keys(n.Set)) {
		text, ok := n.Set[name].(string)
		if !ok {
			return nil, plugin.BadRequest("set.%s: PayPal's fields are text, not %T", name, n.Set[name])
		}
		req.Set = append(req.Set, struct{ Name, Value string }{name, text})
	}
	v, err := pl.Send(req)
	if err != nil {
		return nil, err
	}
	views := []api.MessageView{v}
	for _, id := range v.Copies {
		if c, ok := pl.host.View(id); ok && id != v.ID {
			views = append(views, c)
		}
	}
	return views, nil
}

func (*Plugin) Kinds() []api.ProviderKind { return providerKinds(generate.Kinds()) }

// providerKinds lists generated kinds as a provider's.
func providerKinds(ks []generate.Kind) []api.ProviderKind {
	out := make([]api.ProviderKind, len(ks))
	for i, k := range ks {
		out[i] = api.ProviderKind{Name: k.Name, Description: k.Description}
	}
	return out
}

func (pl *Plugin) Responsive(d time.Duration) bool { return pl.svc.Responsive(d) }

// remake is the command that makes message v again from its seed: its
// kind, time, charset and receiver. Each value is quoted: a receiver
// email is whatever the sender set, and users paste the line into a
// shell.
func remake(v api.MessageView) string {
	if v.Seed == 0 {
		return ""
	}
	args := []string{"fixtures", "show", v.Kind, "--raw", "--seed", strconv.FormatUint(uint64(v.Seed), 10),
		"--at", v.Created.UTC().Format(time.RFC3339)}
	if v.Charset != "" {
		args = append(args, "--charset", v.Charset)
	}
	if !v.Sandbox {
		args = append(args, "--live")
	}
	for _, name := range []string{"receiver_email", "receiver_id"} {
		if i := slices.IndexFunc(v.Fields, func(f api.FieldView) bool { return f.Name == name }); i >= 0 && v.Fields[i].Value != "" {
			args = append(args, "--"+strings.ReplaceAll(name, "_", "-"), v.Fields[i].Value)
		}
	}
	return shell.Command("ipnlab", args...)
}

func (pl *Plugin) onPostback(p PostbackRecord) {
	pl.metrics.Postback(p)
	if f := pl.opts.Observe; f != nil {
		f(p)
	}
	if pl.opts.NoEvents {
		return
	}
	pl.host.Logger.Debug("postback", "message", p.MessageID, "verdict", p.Verdict.Summary(), "fault", p.Fault)
	if p.MessageID != "" {
		p.DuringAttempt = pl.host.Engine.Running(p.MessageID)
	}
	pl.host.Publish(events.Postback, p.Time, Provider, p.MessageID, p)
}
