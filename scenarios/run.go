package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/orders"
)

// Env is what scenarios run against: an in-process emulator on a manual
// clock (which the listener uses as its verifier) and the listener.
type Env struct {
	Emulator *emulator.Emulator
	// Targets are the listener's endpoints, by provider name (paypal,
	// paydo, a plug-in's): a send goes to its provider's.
	Targets map[string]string
	// Probe reads the listener's business state; nil skips business
	// expectations (protocol level only).
	Probe ProbeReader
	// PayerEmail is a customer the listener knows (default customer@example.com).
	PayerEmail string
	// StrangerSource is a local address the listener must not allowlist
	// for PayDo (default 127.0.0.2).
	StrangerSource string
	// PayDoSource is the address the listener allowlists for PayDo (for
	// spoofed X-Forwarded-For headers; default 127.0.0.1).
	PayDoSource string
	// UnacceptedCurrency is one the listener does not accept (default JPY).
	UnacceptedCurrency string
	// AckTimeout is the emulator's ack window, for delays like "ack+1s".
	AckTimeout time.Duration
	// Settle bounds waits on the listener (probe idle; default 10s).
	Settle time.Duration
	// PostbackWait is how long to wait for a postback when a step does not
	// say (default 5s, wall time), or longer once the listener has shown
	// slower postbacks (PostbackPace).
	PostbackWait time.Duration
	// PostbackPace, if set, is shared by the scenarios of one run (a
	// conformance session): the slowest postback any of them saw; nil
	// learns within this scenario alone.
	PostbackPace *PostbackPace
	// Advance moves the emulator's clock for an advance step; nil calls
	// Emulator.Advance. A harness running several clock-moving scenarios
	// at once gives one that moves the clock for all of them together.
	Advance func(ctx context.Context, by time.Duration) error
	// Seed is the run's: every generated message without a seed of its
	// own derives its seed from it and its step's number, so the same
	// seed sends the same messages. 0 draws one (reported in Result).
	Seed uint64
	// Orders, if set, gives orders of the shop under test: every
	// generated payment names a new one (an order-based shop), and a send
	// may pay one short, twice, in another currency, or name an unknown
	// one.
	Orders orders.Source
	// Log, if set, receives a line per step.
	Log io.Writer
	// Intercept, if set, says the emulator stands in for PayPal's verify
	// hosts as an HTTPS proxy: a message never posted back is explained
	// from what the proxy saw.
	Intercept *Intercept
}

// Intercept is what a listener needs to reach the emulator through its
// proxy, for the reports to name.
type Intercept struct {
	ProxyURL string `json:"proxy_url,omitempty"` // what HTTPS_PROXY must say ("": no proxy)
	CA       string `json:"ca"`                  // the CA certificate the client must trust
	// TLSURL is the verifier served over TLS for the route without a
	// proxy ("": none).
	TLSURL string `json:"tls_url,omitempty"`
}

// The defaults of an Env's zero fields: the one place they are written
// (the conformance suite's configuration starts from them too).
const (
	DefaultPayerEmail         = "customer@example.com"
	DefaultStrangerSource     = "127.0.0.2"
	DefaultPayDoSource        = "127.0.0.1"
	DefaultUnacceptedCurrency = "JPY"
	DefaultSettle             = 10 * time.Second
	DefaultPostbackWait       = 5 * time.Second
)

// withDefaults fills the zero fields of env.
func (env Env) withDefaults() Env {
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&env.PayerEmail, DefaultPayerEmail)
	set(&env.StrangerSource, DefaultStrangerSource)
	set(&env.PayDoSource, DefaultPayDoSource)
	set(&env.UnacceptedCurrency, DefaultUnacceptedCurrency)
	if env.Settle == 0 {
		env.Settle = DefaultSettle
	}
	if env.PostbackWait == 0 {
		env.PostbackWait = DefaultPostbackWait
	}
	if env.PostbackPace == nil {
		env.PostbackPace = &PostbackPace{}
	}
	if env.AckTimeout == 0 {
		env.AckTimeout = delivery.DefaultAckTimeout
	}
	return env
}

// Status is a result's outcome, ordered: disabled < skipped < passed <
// blocked < failed < error.
type Status int

// Outcomes.
const (
	Disabled Status = iota
	Skipped
	Passed
	// Blocked is a check that could not be judged because the listener
	// has a bug that another check names (every postback of its messages
	// broke it): not a pass, and not a second verdict on the same bug.
	Blocked
	Failed
	Error
)

func (s Status) String() string {
	return [...]string{"disabled", "skipped", "passed", "blocked", "failed", "error"}[s]
}

// MarshalText writes the status's name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is what a run of a scenario found.
type Result struct {
	Scenario string   `json:"scenario"`
	Status   Status   `json:"status"`
	Message  string   `json:"message,omitempty"`
	Step     int      `json:"step,omitempty"` // line of the step that decided it
	Seed     api.Seed `json:"seed"`           // replays the run: ipnlab run NAME --seed N
	// Findings are the differences the verifier found in the listener's
	// INVALID postbacks of this run's messages (set when it failed), so a
	// harness can tell which bug stopped it.
	Findings []paypal.Finding `json:"-"`
	// NeverPostedBack is set when it failed on something other than acks
	// and the listener posted none of its PayPal messages back: nothing
	// it expected could have happened.
	NeverPostedBack bool          `json:"-"`
	Evidence        []string      `json:"evidence,omitempty"`
	Duration        time.Duration `json:"-"`
	// Customers are those the probe named in the effects the
	// expectations read (a harness learns the listener's ids from them).
	Customers []string `json:"-"`
	// NotJudged says what the expectations asked that the probe cannot
	// answer (a status, a hold, a payer name of a probe that knows money
	// only), and so was not judged.
	NotJudged []string `json:"not_judged,omitempty"`
}

// failure is an expectation not met; harness errors are plain errors.
type failure struct {
	msg      string
	evidence []string
}

func (f *failure) Error() string { return f.msg }

// skip is an expectation that cannot be judged here.
type skip struct{ msg string }

func (s *skip) Error() string { return s.msg }

func fail(evidence []string, format string, args ...any) error {
	return &failure{msg: fmt.Sprintf(format, args...), evidence: evidence}
}

// Run runs sc against env.
func Run(ctx context.Context, env Env, sc *Scenario) Result {
	start := time.Now()
	env = env.withDefaults()
	if env.Seed == 0 {
		env.Seed = generate.NewSeed()
	}
	r := &runner{env: env, sc: sc, sent: map[string]emulator.MessageView{}, generated: map[string][]generate.Step{}, orders: map[string]orders.Order{}}
	res := Result{Scenario: sc.Name, Status: Passed, Seed: api.Seed(env.Seed)}
	defer r.watch(ctx)()
	if err := r.readStartBalances(ctx); err != nil {
		res.Status, res.Message, res.Duration = Error, err.Error(), time.Since(start)
		return res
	}
	for i, st := range sc.Steps {
		r.index = i
		if err := ctx.Err(); err != nil {
			res.Status, res.Message, res.Step = Error, err.Error(), st.Line()
			break
		}
		err := st.run(ctx, r)
		var f *failure
		var s *skip
		switch {
		case err == nil:
			continue
		case errors.As(err, &f):
			res.Status, res.Message, res.Evidence = Failed, f.msg, f.evidence
		case errors.As(err, &s):
			res.Status, res.Message = Skipped, s.msg
		default:
			res.Status, res.Message = Error, err.Error()
		}
		res.Step = st.Line()
		r.logf("  line %d: %s: %s", st.Line(), res.Status, res.Message)
		if res.Status == Failed {
			res.Findings = r.findings()
			res.NeverPostedBack = !aboutAcks(st) && r.neverPostedBack()
		}
		break
	}
	res.Duration, res.Customers, res.NotJudged = time.Since(start), r.customers, r.notJudged
	return res
}

type runner struct {
	env       Env
	sc        *Scenario
	index     int                    // of the step running
	txns      []string               // the transactions its messages are about
	views     []emulator.MessageView // every message it sent, as first seen
	sent      map[string]emulator.MessageView
	generated map[string][]generate.Step
	// startBalances are the balances of the customers the scenario's
	// balance expectations name, read before its first step.
	startBalances map[string]map[string]generate.Money
	// customers are those the probe named in the effects it showed.
	customers []string
	// notJudged are the expectations' parts the probe cannot answer.
	notJudged []string
	// seen is what the runner last saw of each message's deliveries and
	// postbacks, and when (finished.go).
	seen map[string]seenMessage
	// timeline is every emulator event about each message, with the wall
	// time the runner heard of it (finished.go's watch): when a quiet
	// period starts, and the interleaving a race failure shows.
	eventsMu sync.Mutex
	timeline map[string][]stamped
	// bursts are the messages a send with bursts sent, by its alias.
	bursts map[string][]emulator.MessageView
	// orders are the orders sends named, by their alias.
	orders map[string]orders.Order
}

func (r *runner) logf(format string, args ...any) {
	if r.env.Log != nil {
		fmt.Fprintf(r.env.Log, format+"\n", args...)
	}
}

func (s *Send) run(ctx context.Context, r *runner) error { return r.send(ctx, s) }

func (g *Generate) run(ctx context.Context, r *runner) error { return r.generate(ctx, g) }

func (s *Resend) run(ctx context.Context, r *runner) error {
	v := r.sent[s.Message]
	if err := r.resend(v); err != nil {
		return err
	}
	r.logf("  line %d: resend %s (%s)", s.Line(), s.Message, v.ID)
	return r.settle(ctx)
}

func (s *Fault) run(_ context.Context, r *runner) error {
	d, err := r.delay(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", s.Line(), err)
	}
	f := paypal.Fault{Kind: paypal.FaultKind(s.Kind), Count: s.Count, Delay: d}
	id := ""
	if s.Message != "" {
		id = r.sent[s.Message].ID
	}
	r.logf("  line %d: verifier fault %s (count %d)", s.Line(), f.Kind, f.Count)
	return r.env.Emulator.PayPal().SetFault(id, &f)
}

func (s *ClearFault) run(_ context.Context, r *runner) error {
	r.logf("  line %d: verifier fault cleared", s.Line())
	return r.env.Emulator.PayPal().SetFault("", nil)
}

func (s *Outage) run(_ context.Context, r *runner) error {
	r.env.Emulator.SetOutage(s.Down)
	r.logf("  line %d: listener down=%v", s.Line(), s.Down)
	return nil
}

func (s *Advance) run(ctx context.Context, r *runner) error {
	emu := r.env.Emulator
	advance := r.env.Advance
	if advance == nil {
		advance = func(_ context.Context, by time.Duration) error { return emu.Advance(by) }
	}
	by, err := s.Duration()
	if err != nil {
		return fmt.Errorf("line %d: advance: %w", s.Line(), err)
	}
	if err := advance(ctx, by); err != nil {
		return err
	}
	r.logf("  line %d: clock advanced %s to %s", s.Line(), s.By, emu.Clock().Now().Format(time.RFC3339))
	return r.settle(ctx)
}

func (e *Expect) run(ctx context.Context, r *runner) error { return r.expect(ctx, e) }

// resolve replaces ${alias.field} references.
func (r *runner) resolve(s string) (string, error) {
	var err error
	out := refPattern.ReplaceAllStringFunc(s, func(m string) string {
		parts := strings.Split(m[2:len(m)-1], ".")
		if parts[0] == "env" {
			return map[string]string{"payer_email": r.env.PayerEmail, "unaccepted_currency": r.env.UnacceptedCurrency,
				"stranger_source": r.env.StrangerSource}[parts[1]]
		}
		if steps, ok := r.generated[parts[0]]; ok {
			for _, st := range steps {
				if st.Name == parts[1] {
					if v, ok := st.Message.Fields.Get(parts[2]); ok {
						return v
					}
				}
			}
			err = fmt.Errorf("reference %s: the generated message has no such field", m)
			return ""
		}
		v := r.sent[parts[0]]
		switch parts[1] {
		case "id":
			return v.ID
		case "txn_id", "transaction":
			return v.TxnID
		}
		for _, f := range v.Fields {
			if f.Name == parts[1] {
				return f.Value
			}
		}
		err = fmt.Errorf("reference %s: message %s has no field %q", m, v.ID, parts[1])
		return ""
	})
	return out, err
}

// resolved copies a map, resolving references in its string values.
func (r *runner) resolved(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if s, ok := v.(string); ok {
			rs, err := r.resolve(s)
			if err != nil {
				return nil, err
			}
			v = rs
		}
		out[k] = v
	}
	return out, nil
}

func decodeInto(m map[string]any, v any) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func (r *runner) send(ctx context.Context, s *Send) error {
	params, err := r.resolved(s.Params)
	if err != nil {
		return err
	}
	set, err := r.resolved(s.Set)
	if err != nil {
		return err
	}
	return sendStepOf(s.Provider).send(ctx, r, s, params, set)
}

// recordSent records message v of send step s (its name, its
// transaction) and settles.
func (r *runner) recordSent(ctx context.Context, s *Send, v emulator.MessageView) error {
	if s.As != "" {
		r.sent[s.As] = v
	}
	r.track(v.TxnID)
	r.views = append(r.views, v)
	return r.settle(ctx)
}

// notify sends through a plug-in provider.
func (r *runner) notify(s *Send, set map[string]any) (emulator.MessageView, error) {
	p, ok := r.env.Emulator.Provider(s.Provider)
	if !ok {
		return emulator.MessageView{}, fmt.Errorf("provider %s is not registered in this emulator", s.Provider)
	}
	sender, ok := p.(emulator.Sender)
	if !ok {
		return emulator.MessageView{}, fmt.Errorf("provider %s cannot send from a scenario (it is no emulator.Sender)", s.Provider)
	}
	target := r.env.Targets[s.Provider]
	if target == "" {
		return emulator.MessageView{}, fmt.Errorf("no listener endpoint for provider %s (Env.Targets)", s.Provider)
	}
	views, err := sender.Notify(emulator.Notify{Kind: s.Kind, Set: set, NotifyURL: target, Seed: r.seed(s.Seed), Copies: s.Copies})
	if err != nil {
		return emulator.MessageView{}, err
	}
	if len(views) == 0 {
		return emulator.MessageView{}, fmt.Errorf("provider %s sent nothing", s.Provider)
	}
	r.env.Emulator.WaitIdle()
	return views[0], nil
}

// delay is a fault's delay, with "ack+D" measured from the ack window.
func (r *runner) delay(f *Fault) (time.Duration, error) {
	d, ackRelative, err := f.parseDelay()
	if ackRelative {
		d += r.env.AckTimeout
	}
	return d, err
}

// seed is a message's seed: its own if the step gives one, else derived
// from the run's and the step's number.
func (r *runner) seed(own uint64) uint64 {
	if own != 0 {
		return own
	}
	return generate.DeriveSeed(r.env.Seed, fmt.Sprintf("step %d", r.index+1))
}

func (r *runner) generate(ctx context.Context, g *Generate) error {
	params, err := r.resolved(g.Params)
	if err != nil {
		return err
	}
	if _, ok := params["payer_email"]; !ok {
		params["payer_email"] = r.env.PayerEmail
	}
	steps, err := r.lifecycle(g, params)
	if err != nil {
		return err
	}
	// With an order source, a lifecycle whose first message is a payment
	// pays a new order: made again, the same, naming it.
	if r.env.Orders != nil && len(steps) > 0 && slices.Contains(moneyIn, steps[0].Message.Fields.Value("txn_type")) {
		first := steps[0].Message.Fields
		params["gross"], params["currency"] = first.Value("mc_gross"), first.Value("mc_currency")
		o, err := r.newOrder(ctx, params)
		if err != nil {
			return err
		}
		params[o.Field], params["gross"], params["currency"] = o.Ref, o.Amount.String(), o.Currency
		if steps, err = r.lifecycle(g, params); err != nil {
			return err
		}
		r.orders[g.As] = o
	}
	r.generated[g.As] = steps
	r.logf("  generated %s: %s (%d messages, seed %d)", g.As, g.Lifecycle, len(steps), r.seed(g.Seed))
	return nil
}

// lifecycle makes g's messages from params.
func (r *runner) lifecycle(g *Generate, params map[string]any) ([]generate.Step, error) {
	prof := r.env.Emulator.PayPal().Profile()
	gen, err := generate.New(r.seed(g.Seed), generate.Options{Charset: g.Charset, Sandbox: !r.env.Emulator.Live(), Neutral: r.sc.Values != ValuesRealistic, Start: r.env.Emulator.Clock().Now(),
		Receiver: generate.Receiver{Email: prof.ReceiverEmail, ID: prof.ReceiverID}})
	if err != nil {
		return nil, err
	}
	var ep emulator.Params
	if err := decodeInto(params, &ep); err != nil {
		return nil, err
	}
	p, err := emulator.FixtureParams(ep)
	if err != nil {
		return nil, err
	}
	payer := gen.Person()
	payer.Email = ep.PayerEmail
	p.Payer = &payer
	return gen.Lifecycle(g.Lifecycle, p)
}

func (r *runner) resend(v emulator.MessageView) error {
	emu := r.env.Emulator
	err := emu.Resend(v.ID, emulator.ResendRequest{})
	emu.WaitIdle()
	return err
}
