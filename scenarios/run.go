package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/fixtures"
)

// Env is what scenarios run against: an in-process emulator on a manual
// clock (which the listener uses as its verifier) and the listener.
type Env struct {
	Emulator  *emulator.Emulator
	PayPalURL string // the listener's PayPal endpoint
	PayDoURL  string // the listener's PayDo endpoint
	// Probe reads the listener's business state; nil skips business
	// expectations (protocol level only).
	Probe *Probe
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
	// say (default 5s, wall time).
	PostbackWait time.Duration
	// Advance moves the emulator's clock for an advance step; nil calls
	// Emulator.Advance. A harness running several clock-moving scenarios
	// at once gives one that moves the clock for all of them together.
	Advance func(ctx context.Context, by time.Duration) error
	// Seed is the run's: every generated message without a seed of its
	// own derives its seed from it and its step's number, so the same
	// seed sends the same messages. 0 draws one (reported in Result).
	Seed uint64
	// Log, if set, receives a line per step.
	Log io.Writer
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
	Scenario string `json:"scenario"`
	Status   Status `json:"status"`
	Message  string `json:"message,omitempty"`
	Step     int    `json:"step,omitempty"` // line of the step that decided it
	Seed     uint64 `json:"seed"`           // replays the run: ipnlab run NAME --seed N
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
		env.Seed = fixtures.NewSeed()
	}
	r := &runner{env: env, sc: sc, sent: map[string]emulator.MessageView{}, generated: map[string][]fixtures.Step{}}
	res := Result{Scenario: sc.Name, Status: Passed, Seed: env.Seed}
	for i, st := range sc.Steps {
		r.index = i
		if err := ctx.Err(); err != nil {
			res.Status, res.Message, res.Step = Error, err.Error(), st.Line
			break
		}
		err := r.step(ctx, st)
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
		res.Step = st.Line
		r.logf("  line %d: %s: %s", st.Line, res.Status, res.Message)
		if res.Status == Failed {
			res.Findings = r.findings()
			res.NeverPostedBack = !aboutAcks(st) && r.neverPostedBack()
		}
		break
	}
	res.Duration = time.Since(start)
	return res
}

// aboutAcks reports an expectation judged on acknowledgements alone.
func aboutAcks(st Step) bool {
	e := st.Expect
	return e != nil && (e.Acked != nil || e.AckStatus != 0 || e.History != "") && !e.VerifyURL && e.Verdict == "" && !e.AnyVerified && !e.UserAgent && e.Txn == ""
}

// neverPostedBack reports whether this run sent PayPal messages and none
// was ever posted back.
func (r *runner) neverPostedBack() bool {
	sent := false
	for _, v := range r.views {
		if v.Provider == "paydo" {
			continue
		}
		sent = true
		if len(r.env.Emulator.PayPal().Postbacks(v.ID)) > 0 {
			return false
		}
	}
	return sent
}

// findings gathers the fatal findings of every INVALID postback of the
// messages this run sent.
func (r *runner) findings() []paypal.Finding {
	var out []paypal.Finding
	for _, v := range r.views {
		if v.Provider == "paydo" {
			continue
		}
		for _, p := range r.env.Emulator.PayPal().Postbacks(v.ID) {
			if p.Verdict.Result == paypal.Invalid {
				out = append(out, p.Verdict.Fatal()...)
			}
		}
	}
	return out
}

type runner struct {
	env       Env
	sc        *Scenario
	index     int                    // of the step running
	txns      []string               // the transactions its messages are about
	views     []emulator.MessageView // every message it sent, as first seen
	sent      map[string]emulator.MessageView
	generated map[string][]fixtures.Step
}

func (r *runner) logf(format string, args ...any) {
	if r.env.Log != nil {
		fmt.Fprintf(r.env.Log, format+"\n", args...)
	}
}

func (r *runner) step(ctx context.Context, st Step) error {
	emu := r.env.Emulator
	switch {
	case st.Send != nil:
		return r.send(ctx, st)
	case st.Generate != nil:
		return r.generate(st.Generate)
	case st.Resend != nil:
		v := r.sent[st.Resend.Message]
		if err := r.resend(v); err != nil {
			return err
		}
		r.logf("  line %d: resend %s (%s)", st.Line, st.Resend.Message, v.ID)
		return r.settle(ctx)
	case st.Fault != nil:
		d, err := r.delay(st.Fault)
		if err != nil {
			return fmt.Errorf("line %d: %w", st.Line, err)
		}
		f := paypal.Fault{Kind: paypal.FaultKind(st.Fault.Kind), Count: st.Fault.Count, Delay: d}
		id := ""
		if st.Fault.Message != "" {
			id = r.sent[st.Fault.Message].ID
		}
		r.logf("  line %d: verifier fault %s (count %d)", st.Line, f.Kind, f.Count)
		return emu.PayPal().SetFault(id, &f)
	case st.ClearFault != nil:
		r.logf("  line %d: verifier fault cleared", st.Line)
		return emu.PayPal().SetFault("", nil)
	case st.Outage != nil:
		emu.SetOutage(st.Outage.Down)
		r.logf("  line %d: listener down=%v", st.Line, st.Outage.Down)
		return nil
	case st.Advance != nil:
		advance := r.env.Advance
		if advance == nil {
			advance = func(_ context.Context, by time.Duration) error { return emu.Advance(by) }
		}
		by, err := st.Advance.Duration()
		if err != nil {
			return fmt.Errorf("line %d: advance: %w", st.Line, err)
		}
		if err := advance(ctx, by); err != nil {
			return err
		}
		r.logf("  line %d: clock advanced %s to %s", st.Line, st.Advance.By, emu.Clock().Now().Format(time.RFC3339))
		return r.settle(ctx)
	case st.Expect != nil:
		return r.expect(ctx, st)
	}
	return fmt.Errorf("line %d: empty step", st.Line)
}

// settle waits (up to Settle) for the listener to finish what it
// received of this scenario's transactions, when a probe can say so.
// Other scenarios' work does not hold it up. A listener still busy is not
// a failure here; expectations judge.
//
// A listener that keeps retrying a verification the harness breaks on
// purpose is never idle for that transaction; once it has asked again
// about every message of it, it has acted on the first answer, and the
// expectations can judge.
func (r *runner) settle(ctx context.Context) error {
	if len(r.txns) == 0 || r.env.Probe == nil {
		return nil
	}
	deadline := time.Now().Add(r.env.Settle)
	for {
		idle, err := r.idle(ctx, min(time.Until(deadline), 200*time.Millisecond), r.txns...)
		if err != nil || idle || time.Now().After(deadline) {
			return err
		}
		retrying := true
		for _, t := range r.txns {
			retrying = retrying && r.askedAgain(t)
		}
		if retrying {
			return nil
		}
	}
}

func (r *runner) idle(ctx context.Context, d time.Duration, txns ...string) (bool, error) {
	if r.env.Probe == nil {
		return true, nil
	}
	return r.env.Probe.Idle(ctx, d, txns...)
}

// track notes a transaction this scenario's messages are about.
func (r *runner) track(txn string) {
	if txn != "" && !slices.Contains(r.txns, txn) {
		r.txns = append(r.txns, txn)
	}
}

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

func (r *runner) send(ctx context.Context, st Step) error {
	s := st.Send
	params, err := r.resolved(s.Params)
	if err != nil {
		return err
	}
	set, err := r.resolved(s.Set)
	if err != nil {
		return err
	}
	emu := r.env.Emulator
	var v emulator.MessageView
	if s.Provider == "paydo" {
		req := emulator.PayDoRequest{Kind: s.Kind, Then: s.Then, Interval: s.Interval, Copies: s.Copies, Seed: r.seed(s.Seed), NotifyURL: r.env.PayDoURL, Source: s.Source}
		if req.Source == "stranger" {
			req.Source = r.env.StrangerSource
		}
		req.ForwardedFor = s.ForwardedFor
		if req.ForwardedFor == "paydo" {
			req.ForwardedFor = r.env.PayDoSource
		}
		if _, ok := params["metadata"]; !ok && s.Kind == fixtures.PayDoCheckout {
			params["metadata"] = map[string]any{"customer": r.env.PayerEmail}
		}
		if err := decodeInto(params, &req.Params); err != nil {
			return fmt.Errorf("line %d: params: %w", st.Line, err)
		}
		if len(set) > 0 {
			if req.Set, err = json.Marshal(set); err != nil {
				return err
			}
		}
		views, err := emu.SendPayDo(req)
		if err != nil {
			return fmt.Errorf("line %d: %w", st.Line, err)
		}
		v = views[0]
		r.logf("  line %d: send paydo %s -> %d message(s), transaction %s, %s", st.Line, s.Kind, len(views), v.TxnID, v.Status)
	} else {
		req := emulator.SendRequest{Kind: s.Kind, Unset: s.Unset, Charset: s.Charset, Flavour: s.Flavour, Copies: s.Copies,
			Raw: s.Raw, NotifyURL: r.env.PayPalURL}
		if s.From != "" {
			alias, name, _ := strings.Cut(s.From, ".")
			for _, g := range r.generated[alias] {
				if g.Name == name {
					body, err := g.Message.Body()
					if err != nil {
						return err
					}
					req.Raw, req.Kind = string(body), ""
				}
			}
		} else if s.Raw == "" {
			req.Seed, req.Neutral = r.seed(s.Seed), r.sc.Values != ValuesRealistic
			if _, ok := params["payer_email"]; !ok {
				params["payer_email"] = r.env.PayerEmail
			}
			if err := decodeInto(params, &req.Params); err != nil {
				return fmt.Errorf("line %d: params: %w", st.Line, err)
			}
			names := make([]string, 0, len(set))
			for k := range set {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				req.Set = append(req.Set, struct{ Name, Value string }{k, fmt.Sprint(set[k])})
			}
		}
		if s.Fault != nil {
			req.Fault = &emulator.FaultRequest{Kind: s.Fault.Kind, Count: s.Fault.Count}
			d, err := r.delay(s.Fault)
			if err != nil {
				return fmt.Errorf("line %d: %w", st.Line, err)
			}
			if d > 0 {
				req.Fault.Delay = d.String()
			}
		}
		v, err = emu.SendPayPal(req)
		if err != nil {
			return fmt.Errorf("line %d: %w", st.Line, err)
		}
		what := s.Kind
		if s.From != "" {
			what = s.From
		}
		r.logf("  line %d: send paypal %s -> %s txn_id=%s %s", st.Line, what, v.ID, v.TxnID, v.Status)
	}
	if s.As != "" {
		r.sent[s.As] = v
	}
	r.track(v.TxnID)
	r.views = append(r.views, v)
	return r.settle(ctx)
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
	return fixtures.DeriveSeed(r.env.Seed, fmt.Sprintf("step %d", r.index+1))
}

func (r *runner) generate(g *Generate) error {
	prof := r.env.Emulator.PayPal().Profile()
	seed := r.seed(g.Seed)
	gen, err := fixtures.New(seed, fixtures.Options{Charset: g.Charset, Sandbox: !r.env.Emulator.Live(), Neutral: r.sc.Values != ValuesRealistic, Start: r.env.Emulator.Clock().Now(),
		Receiver: fixtures.Receiver{Email: prof.ReceiverEmail, ID: prof.ReceiverID}})
	if err != nil {
		return err
	}
	params, err := r.resolved(g.Params)
	if err != nil {
		return err
	}
	if _, ok := params["payer_email"]; !ok {
		params["payer_email"] = r.env.PayerEmail
	}
	var ep emulator.Params
	if err := decodeInto(params, &ep); err != nil {
		return err
	}
	p, err := ep.Fixture()
	if err != nil {
		return err
	}
	payer := gen.Person()
	payer.Email = ep.PayerEmail
	p.Payer = &payer
	steps, err := gen.Lifecycle(g.Lifecycle, p)
	if err != nil {
		return err
	}
	r.generated[g.As] = steps
	r.logf("  generated %s: %s (%d messages, seed %d)", g.As, g.Lifecycle, len(steps), seed)
	return nil
}

func (r *runner) resend(v emulator.MessageView) error {
	emu := r.env.Emulator
	var err error
	if v.Provider == "paydo" {
		_, err = emu.Engine().Resend(v.ID, "")
	} else {
		_, err = emu.PayPal().Resend(v.ID, "", false)
	}
	emu.WaitIdle()
	return err
}

// waitFor waits (wall time, up to d) until cond holds, waking on every
// emulator event instead of polling.
func (r *runner) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	bus := r.env.Emulator.Events()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	seq := bus.Last()
	for !cond() {
		evs, _, err := bus.Wait(ctx, seq, 0)
		if err != nil {
			return cond()
		}
		seq = evs[len(evs)-1].Seq
	}
	return true
}

func (r *runner) expect(ctx context.Context, st Step) error {
	e := st.Expect
	if e.Message != "" {
		if err := r.expectMessage(ctx, e); err != nil {
			return err
		}
	}
	if e.Txn != "" {
		if err := r.expectTxn(ctx, e); err != nil {
			return err
		}
	}
	r.logf("  line %d: expectations met", st.Line)
	return nil
}

// postbackEvidence says, for each postback of a message, what the
// listener sent and what it got back: the verifier's answer as the
// listener received it (status and body), never the emulator's own
// verdict behind an injected fault. Postbacks are numbered per message
// and stamped with clock time, so the same seed gives the same lines.
func postbackEvidence(pbs []paypal.PostbackRecord) []string {
	var out []string
	for i, p := range pbs {
		line := fmt.Sprintf("postback %d at %s: %s", i+1, p.Time.Format(time.RFC3339), answerText(p))
		if p.Fault != "" {
			line += " (the harness broke the verifier on purpose: " + string(p.Fault) + ")"
		}
		switch {
		case p.Verdict.Rule == paypal.RuleMalformed:
			line += "; you posted back a malformed body:"
		case p.Verdict.Result == paypal.Verified && len(p.Verdict.Warnings()) > 0:
			line += "; your postback matched the message (tolerated: " + rulesText(p.Verdict.Warnings()) + ")"
		case p.Verdict.Result == paypal.Verified:
			line += "; your postback matched the message"
		default:
			line += "; your postback did not match the message:"
		}
		if ua := p.Header.Get("User-Agent"); ua == "" {
			line += " [no User-Agent]"
		}
		out = append(out, line)
		for _, f := range p.Verdict.Fatal() {
			out = append(out, "  "+findingText(f))
		}
	}
	return out
}

// answerText is the verifier's answer as the listener received it.
func answerText(p paypal.PostbackRecord) string {
	if p.Status == 0 {
		return "the verifier closed the connection without answering"
	}
	body := p.Answer
	if len(body) > 80 {
		body = body[:77] + "..."
	}
	return fmt.Sprintf("the verifier answered HTTP %d with body %q", p.Status, body)
}

func rulesText(fs []paypal.Finding) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f.Rule)
	}
	return strings.Join(names, ", ")
}

// findingText explains one difference in the listener's words: a dropped
// empty field says it was empty, a renamed one names both names.
func findingText(f paypal.Finding) string {
	switch {
	case f.Field == "":
		return fmt.Sprintf("%s: %s", f.Rule, f.Detail)
	case f.Rule == paypal.RuleFieldDropped || f.Rule == paypal.RuleFieldAdded || f.Rule == paypal.RuleFieldRenamed:
		return fmt.Sprintf("%s: %s", f.Rule, f.Detail)
	}
	return fmt.Sprintf("%s: %s (sent %s, got %s)", f.Rule, f.Detail, orNothing(f.Expected), orNothing(f.Got))
}

func orNothing(raw string) string {
	if raw == "" {
		return "nothing"
	}
	return strconv.Quote(raw)
}

// unverifiedStory says, in the listener's terms, why a message that met a
// broken verifier was never verified: what the verifier answered, what the
// listener then told PayPal, and whether it asked again.
func unverifiedStory(v emulator.MessageView, pbs []paypal.PostbackRecord, within time.Duration) string {
	if len(pbs) == 0 {
		return fmt.Sprintf("it was never posted back within %s", within)
	}
	first := 0
	for i, p := range pbs {
		if p.Fault != "" {
			first = i
			break
		}
	}
	story := strings.Replace(answerText(pbs[first]), "the verifier answered", "the verifier answered your postback", 1)
	if v.AckedAt != nil {
		story += "; you acknowledged the message with HTTP 200, so PayPal will not resend it,"
	} else {
		story += fmt.Sprintf("; you did not acknowledge the message (%d deliveries),", len(v.Attempts))
	}
	if again := len(pbs) - first - 1; again == 0 {
		story += " and you never asked the verifier again"
	} else {
		story += fmt.Sprintf(" and none of your %d later postbacks was VERIFIED", again)
	}
	return story + fmt.Sprintf(" (waited %s)", within)
}

// attemptEvidence lists a message's deliveries and the listener's answers,
// stamped with clock time (wall durations vary from run to run; a timeout
// says so in its error).
func attemptEvidence(v emulator.MessageView) []string {
	var out []string
	for _, a := range v.Attempts {
		outcome := fmt.Sprintf("you answered HTTP %d", a.StatusCode)
		if a.Error != "" {
			outcome = a.Error
		}
		out = append(out, fmt.Sprintf("delivery %d (%s) at %s: %s", a.Number, a.Trigger, a.Start.Format(time.RFC3339), outcome))
	}
	return out
}

func (r *runner) expectMessage(ctx context.Context, e *Expect) error {
	emu := r.env.Emulator
	within, err := e.wait()
	if err != nil {
		return err
	}
	if within == 0 {
		within = r.env.PostbackWait
	}
	id := r.sent[e.Message].ID
	view := func() emulator.MessageView { v, _ := emu.View(id); return v }
	needPostback := e.Verdict == "VERIFIED" || e.Verdict == "INVALID" || e.AnyVerified || e.UserAgent || e.VerifyURL
	if needPostback {
		// A listener that never posts back at all is judged after the usual
		// wait, not after a longer `within` meant for one that is retrying.
		first := r.waitFor(ctx, min(within, r.env.PostbackWait), func() bool { return len(emu.PayPal().Postbacks(id)) > 0 })
		r.waitFor(ctx, within, func() bool {
			if !first {
				return true
			}
			pbs := emu.PayPal().Postbacks(id)
			if e.AnyVerified {
				for _, p := range pbs {
					if p.Verdict.Result == paypal.Verified && p.Fault == "" {
						return true
					}
				}
				return false
			}
			return len(pbs) > 0
		})
	} else if e.Verdict == "none" || e.PostbacksMax > 0 {
		// Let the listener finish; without a probe, give it a moment.
		if r.env.Probe != nil {
			if err := r.settle(ctx); err != nil {
				return err
			}
		} else {
			r.waitFor(ctx, min(within, time.Second), func() bool { return false })
		}
	}
	v := view()
	pbs := emu.PayPal().Postbacks(id)
	ev := append(attemptEvidence(v), postbackEvidence(pbs)...)
	if e.Acked != nil && (v.AckedAt != nil) != *e.Acked {
		if *e.Acked {
			return fail(ev, "message %s was not acknowledged with HTTP 200", e.Message)
		}
		return fail(ev, "message %s was acknowledged, and must not have been", e.Message)
	}
	if e.AckStatus != 0 && (len(v.Attempts) == 0 || v.Attempts[len(v.Attempts)-1].StatusCode != e.AckStatus) {
		return fail(ev, "message %s: the last attempt was not answered HTTP %d", e.Message, e.AckStatus)
	}
	if e.History != "" && strings.TrimSuffix(v.Status, " - resending") != e.History {
		return fail(ev, "message %s is %s in History, want %s", e.Message, v.Status, e.History)
	}
	if e.VerifyURL && len(pbs) == 0 {
		return fail(ev, "message %s was never posted back to the verifier within %s", e.Message, within)
	}
	switch e.Verdict {
	case "none":
		if len(pbs) > 0 {
			return fail(ev, "message %s was posted back %d time(s), want none", e.Message, len(pbs))
		}
	case "VERIFIED", "INVALID":
		if len(pbs) == 0 {
			return fail(ev, "message %s was never posted back within %s", e.Message, within)
		}
		if got := pbs[len(pbs)-1].Verdict; string(got.Result) != e.Verdict {
			return fail(ev, "message %s: the postback was %s, want %s", e.Message, got.Summary(), e.Verdict)
		}
	}
	if e.AnyVerified {
		ok := false
		for _, p := range pbs {
			ok = ok || (p.Verdict.Result == paypal.Verified && p.Fault == "")
		}
		if !ok {
			return fail(ev, "message %s was never verified: %s", e.Message, unverifiedStory(v, pbs, within))
		}
	}
	if e.PostbacksMax > 0 && len(pbs) > e.PostbacksMax {
		return fail(ev, "message %s was posted back %d times, at most %d expected", e.Message, len(pbs), e.PostbacksMax)
	}
	if e.UserAgent {
		if len(pbs) == 0 {
			return fail(ev, "message %s was never posted back within %s", e.Message, within)
		}
		for _, p := range pbs {
			if p.Header.Get("User-Agent") == "" {
				return fail(ev, "postback %s carried no User-Agent", p.ID)
			}
		}
	}
	return nil
}

func (r *runner) expectTxn(ctx context.Context, e *Expect) error {
	if r.env.Probe == nil {
		return &skip{msg: "needs the listener's probe (business level)"}
	}
	txn, err := r.resolve(e.Txn)
	if err != nil {
		return err
	}
	// Judge once the listener is idle for this transaction; while it is
	// busy, accept as soon as the expectations hold. Expectations a busy
	// listener could still break (nothing credited) are also judged once
	// it has asked the verifier again about every message of the
	// transaction: by then it has acted on the first answer. Otherwise
	// they are judged when the wait is up.
	wait := r.env.Settle
	if w, err := e.wait(); err != nil {
		return err
	} else if w > 0 {
		wait = w
	}
	deadline := time.Now().Add(wait)
	var t ProbeTransaction
	var absent bool
	for {
		idle, err := r.idle(ctx, min(time.Until(deadline), 200*time.Millisecond), append([]string{txn}, r.txns...)...)
		if err != nil {
			return err
		}
		t, err = r.env.Probe.Transaction(ctx, e.Provider, txn)
		absent = errors.Is(err, ErrNoTransaction)
		if err != nil && !absent {
			return err
		}
		met := r.judgeTxn(e, txn, t, absent) == nil
		if idle || time.Now().After(deadline) || (met && (!negative(e) || r.askedAgain(txn))) {
			break
		}
	}
	return r.judgeTxn(e, txn, t, absent)
}

// askedAgain reports whether every PayPal message of txn this scenario
// sent has been posted back at least twice.
func (r *runner) askedAgain(txn string) bool {
	n := 0
	for _, v := range r.views {
		if v.TxnID != txn || v.Provider == "paydo" {
			continue
		}
		if len(r.env.Emulator.PayPal().Postbacks(v.ID)) < 2 {
			return false
		}
		n++
	}
	return n > 0
}

// negative reports expectations that busy listeners could still break
// (nothing credited yet): they are judged when idle or at the deadline.
func negative(e *Expect) bool {
	return e.Effects != nil && *e.Effects == 0
}

func (r *runner) judgeTxn(e *Expect, txn string, t ProbeTransaction, absent bool) error {
	var err error
	var ev []string
	for _, f := range t.Effects {
		ev = append(ev, fmt.Sprintf("effect %s %s %s %s for %s", f.TxnID, f.Status, f.Amount, f.Currency, f.Customer))
	}
	if t.Held != "" {
		ev = append(ev, "held: "+t.Held)
	}
	if absent {
		ev = append(ev, fmt.Sprintf("the probe has no %s transaction %s", e.Provider, txn))
	}
	if e.Effects != nil && len(t.Effects) != *e.Effects {
		return fail(ev, "transaction %s has %d balance effect(s), want %d", txn, len(t.Effects), *e.Effects)
	}
	if e.Net != "" {
		want, _ := fixtures.ParseMoney(e.Net)
		got := fixtures.Money(0)
		if s := t.Net[e.Currency]; s != "" {
			if got, err = fixtures.ParseMoney(s); err != nil {
				return fail(ev, "transaction %s: the probe's net %q is not an amount", txn, s)
			}
		}
		if got != want {
			return fail(ev, "transaction %s nets %s %s, want %s", txn, got, e.Currency, want)
		}
	}
	if e.TxnStatus != "" && t.Status != e.TxnStatus {
		if absent {
			return fail(ev, "transaction %s is unknown to the listener, want status %s", txn, e.TxnStatus)
		}
		return fail(ev, "transaction %s is %s, want %s", txn, t.Status, e.TxnStatus)
	}
	if e.Held != nil && (t.Held != "") != *e.Held {
		return fail(ev, "transaction %s held=%v, want %v", txn, t.Held != "", *e.Held)
	}
	if e.PayerName != "" && t.PayerName != e.PayerName {
		return fail(ev, "transaction %s payer name is %q, want %q", txn, t.PayerName, e.PayerName)
	}
	return nil
}
