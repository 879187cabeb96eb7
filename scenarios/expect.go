package scenarios

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/probe"
)

// Expectations: judging a message from the emulator's records and a
// transaction from the listener's probe.

// aboutAcks reports an expectation judged on acknowledgements alone.
func aboutAcks(st Step) bool {
	e, ok := st.(*Expect)
	return ok && (e.Acked != nil || e.AckStatus != 0 || e.History != "") && !e.VerifyURL && e.Verdict == "" && !e.AnyVerified && !e.UserAgent && e.Txn == ""
}

// neverPostedBack reports whether this run sent messages that owe a
// confirmation (PayPal's postback) and none was ever confirmed.
func (r *runner) neverPostedBack() bool {
	sent := false
	for _, v := range r.views {
		c := r.confirmer(v.Provider)
		if c == nil {
			continue
		}
		sent = true
		if c.Confirmations(v.ID) > 0 {
			return false
		}
	}
	return sent
}

// confirmer is the provider of messages that owe a confirmation
// (emulator.Confirmer), nil for a provider whose messages owe none.
func (r *runner) confirmer(provider string) emulator.Confirmer {
	p, ok := r.env.Emulator.Provider(provider)
	if !ok {
		return nil
	}
	c, _ := p.(emulator.Confirmer)
	return c
}

// findings gathers the fatal findings of every INVALID postback of the
// messages this run sent.
func (r *runner) findings() []paypal.Finding {
	var out []paypal.Finding
	for _, v := range r.views {
		if v.Provider != paypal.Provider { // postbacks are PayPal's alone
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

func (r *runner) expect(ctx context.Context, e *Expect) error {
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
	if e.Customer != "" {
		if err := r.expectBalance(ctx, e); err != nil {
			return err
		}
	}
	if e.Order != "" {
		if err := r.expectOrder(ctx, e); err != nil {
			return err
		}
	}
	r.logf("  line %d: expectations met", e.Line())
	return nil
}

func (r *runner) expectMessage(ctx context.Context, e *Expect) error {
	emu := r.env.Emulator
	within, err := e.wait()
	if err != nil {
		return err
	}
	postbackWait := r.env.PostbackPace.Wait(r.env.PostbackWait)
	// stated is the wait a verdict names: the one asked for, not the one
	// a slow run stretched it to (wall time), so that a seed's report is
	// the same on a busy machine. It is true either way: not within the
	// longer wait is not within the shorter.
	stated := within
	if within == 0 {
		within, stated = postbackWait, r.env.PostbackWait
	}
	id := r.sent[e.Message].ID
	view := func() emulator.MessageView { v, _ := emu.View(id); return v }
	needPostback := e.Verdict == "VERIFIED" || e.Verdict == "INVALID" || e.AnyVerified || e.UserAgent || e.VerifyURL || e.Endpoint
	if needPostback {
		// A listener that never posts back at all is judged after the usual
		// wait, not after a longer `within` meant for one that is retrying.
		first := r.waitFor(ctx, min(within, postbackWait), func() bool { return len(emu.PayPal().Postbacks(id)) > 0 })
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
		if e.PostbacksMax > 0 || e.NoFlood {
			// Settling ends once a retrying listener has asked twice;
			// whether it asks more is what these judge. Wait until it is
			// done with the message, or has asked too often: on a busy
			// machine its third postback came after the judgement.
			if r.env.Probe != nil {
				if err := r.settleUntil(ctx, func() bool { return r.floods(e, id) }); err != nil {
					return err
				}
			} else {
				r.waitFor(ctx, min(within, time.Second), func() bool { return r.floods(e, id) })
			}
		}
	} else if e.Verdict == "none" || e.PostbacksMax > 0 || e.NoFlood {
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
		return fail(ev, "%s", r.notPostedBack(fmt.Sprintf("message %s was never posted back to the verifier within %s", e.Message, stated), v))
	}
	if e.Endpoint {
		if err := judgeEndpoint(e.Message, r.notPostedBack(fmt.Sprintf("message %s was never posted back within %s", e.Message, stated), v), pbs, ev); err != nil {
			return err
		}
	}
	switch e.Verdict {
	case "none":
		if len(pbs) > 0 {
			return fail(ev, "message %s was posted back %d time(s), want none", e.Message, len(pbs))
		}
	case "VERIFIED", "INVALID":
		if len(pbs) == 0 {
			return fail(ev, "%s", r.notPostedBack(fmt.Sprintf("message %s was never posted back within %s", e.Message, stated), v))
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
			return fail(ev, "message %s was never verified: %s", e.Message, unverifiedStory(v, pbs, stated))
		}
	}
	if e.PostbacksMax > 0 && len(pbs) > e.PostbacksMax {
		return fail(ev, "message %s was posted back %d times, at most %d expected", e.Message, len(pbs), e.PostbacksMax)
	}
	if e.NoFlood {
		if answered, reached := r.answeredAndReached(id); answered > reached {
			return fail(ev, "message %s was posted back and answered VERIFIED or INVALID %d times, but reached the listener %d time(s): "+
				"a listener asks once per delivery, and again only when the answer was none", e.Message, answered, reached)
		}
	}
	if e.UserAgent {
		if len(pbs) == 0 {
			return fail(ev, "%s", r.notPostedBack(fmt.Sprintf("message %s was never posted back within %s", e.Message, stated), v))
		}
		for _, p := range pbs {
			if p.Header.Get("User-Agent") == "" {
				return fail(ev, "postback %s carried no User-Agent", p.ID)
			}
		}
	}
	if len(e.Own) > 0 {
		return r.expectOwn(e, v, ev)
	}
	return nil
}

// floods reports whether message id was already posted back more often
// than e allows.
func (r *runner) floods(e *Expect, id string) bool {
	if e.PostbacksMax > 0 && len(r.env.Emulator.PayPal().Postbacks(id)) > e.PostbacksMax {
		return true
	}
	if e.NoFlood {
		answered, reached := r.answeredAndReached(id)
		return answered > reached
	}
	return false
}

// OwnExpecter is a provider (an emulator.Provider) that judges
// expectations of its own on its messages: what an expect step lists
// under own. ExpectOwn returns nil when every one is met; otherwise an
// error saying which is not and why, and the evidence for it. An
// expectation it does not know is an error of the scenario's, which it
// reports as such (ErrUnknownExpectation).
type OwnExpecter interface {
	ExpectOwn(messageID string, want map[string]string) (evidence []string, err error)
}

// ErrUnknownExpectation is what an OwnExpecter wraps for a name it does
// not judge: the scenario is wrong, not the listener.
var ErrUnknownExpectation = errors.New("unknown expectation")

func (r *runner) expectOwn(e *Expect, v emulator.MessageView, ev []string) error {
	p, ok := r.env.Emulator.Provider(v.Provider)
	ex, judges := p.(OwnExpecter)
	if !ok || !judges {
		return fmt.Errorf("line %d: own: provider %s judges no expectations of its own", e.Line(), v.Provider)
	}
	evidence, err := ex.ExpectOwn(v.ID, e.Own)
	switch {
	case errors.Is(err, ErrUnknownExpectation):
		return fmt.Errorf("line %d: own: %w", e.Line(), err)
	case err != nil:
		return fail(append(ev, evidence...), "message %s: %v", e.Message, err)
	}
	return nil
}

// judgeEndpoint fails a message posted back to the other environment's
// verify host, and skips one that never went to PayPal's hosts at all
// (the listener posts to the emulator's own URL: which host it would
// pick is not seen).
func judgeEndpoint(alias, never string, pbs []paypal.PostbackRecord, ev []string) error {
	if len(pbs) == 0 {
		return fail(ev, "%s", never)
	}
	reached := false
	for _, p := range pbs {
		if p.Endpoint == paypal.EndpointNone {
			continue
		}
		reached = true
		for _, f := range p.Verdict.Findings {
			if f.Rule == paypal.RuleEndpoint {
				return fail(ev, "message %s: %s; %s", alias, f.Detail, liveHint(f))
			}
		}
	}
	if !reached {
		return &skip{msg: "the listener posted back to the emulator's own URL, not to PayPal's hosts: the host it picks is seen only when it posts to PayPal's (--intercept)"}
	}
	return nil
}

// liveHint says which way --live goes for a message posted back to the
// other environment: a listener configured as in production posts every
// message to the live host, one for the sandbox to the sandbox.
func liveHint(f paypal.Finding) string {
	if e, _ := paypal.EndpointOf(f.Got); e == paypal.EndpointLive {
		return "if your listener is configured as in production, run with --live (the emulator then sends live messages)"
	}
	return "if your listener is configured for the sandbox, run without --live (the emulator then sends sandbox messages)"
}

func (r *runner) expectTxn(ctx context.Context, e *Expect) error {
	if r.env.Probe == nil {
		return &skip{msg: "needs the listener's probe (business level)"}
	}
	if bursts := r.burstsOf(e.Txn); len(bursts) > 1 {
		for b, v := range bursts {
			if err := r.expectOneTxn(ctx, e, v.TxnID); err != nil {
				if f, ok := err.(*failure); ok {
					f.msg = fmt.Sprintf("burst %d of %d: %s", b+1, len(bursts), f.msg)
					f.evidence = append(r.raceEvidence(b+1, len(bursts), v), f.evidence...)
				}
				return err
			}
		}
		return nil
	}
	txn, err := r.resolve(e.Txn)
	if err != nil {
		return err
	}
	return r.expectOneTxn(ctx, e, txn)
}

// expectOneTxn judges one transaction.
func (r *runner) expectOneTxn(ctx context.Context, e *Expect, txn string) error {
	// Judge once the listener is idle for this transaction and has
	// provably finished with the scenario's messages (finished.go). While
	// it is busy the expectations may hold for a moment and break later
	// (a second copy credited after the first), so they are judged early
	// only once the listener has asked the verifier again about every
	// message of the transaction, copies included: by then it has acted
	// on the first answer. Otherwise they are judged when the wait is up.
	wait := r.env.Settle
	if w, err := e.wait(); err != nil {
		return err
	} else if w > 0 {
		wait = w
	}
	known := r.knownFields(e)
	if e.Effects == nil && e.Net == "" && !known.status && !known.held && !known.payerName {
		return &skip{msg: "not judged: " + strings.Join(known.notes, "; ")}
	}
	r.noteNotJudged(known.notes...)
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
		met := r.judgeTxn(e, known, txn, t, absent) == nil
		if r.settled(idle, !met) || time.Now().After(deadline) || (met && r.askedAgain(txn)) {
			break
		}
		if idle {
			r.pause(ctx, deadline)
		}
	}
	return r.judgeTxn(e, known, txn, t, absent)
}

// judgeable is which of an expectation's bookkeeping fields the probe
// can answer, and a note for each it cannot.
type judgeable struct {
	status, held, payerName bool
	notes                   []string
}

// knownFields says which of e's fields beyond money the probe answers
// (docs/probe.md: a probe that knows money only is judged on money).
func (r *runner) knownFields(e *Expect) judgeable {
	knows := KnowsOf(r.env.Probe)
	var j judgeable
	field := func(set bool, fact probe.Fact, name, want string) bool {
		if !set {
			return false
		}
		if slices.Contains(knows, fact) {
			return true
		}
		j.notes = append(j.notes, fmt.Sprintf("%s %s: the probe does not declare %s (it knows %s)", name, want, fact, probe.FactList(knows)))
		return false
	}
	held := ""
	if e.Held != nil {
		held = fmt.Sprint(*e.Held)
	}
	j.status = field(e.TxnStatus != "", probe.Statuses, "txn_status", e.TxnStatus)
	j.held = field(e.Held != nil, probe.Holds, "held", held)
	j.payerName = field(e.PayerName != "", probe.PayerNames, "payer_name", fmt.Sprintf("%q", e.PayerName))
	return j
}

// noteNotJudged keeps what an expectation could not judge, once each.
func (r *runner) noteNotJudged(notes ...string) {
	for _, n := range notes {
		if !slices.Contains(r.notJudged, n) {
			r.notJudged = append(r.notJudged, n)
		}
	}
}

// answeredAndReached counts, for message id and every message of the
// same bytes (its copies, its resends: the verifier takes all their
// postbacks for one message's), the postbacks answered with a definitive
// VERIFIED or INVALID, and the deliveries that reached the listener (all
// but those a simulated outage failed).
func (r *runner) answeredAndReached(id string) (answered, reached int) {
	emu := r.env.Emulator
	first, _ := emu.View(id)
	for _, v := range r.views {
		if v.Provider != paypal.Provider || v.Body != first.Body {
			continue
		}
		for _, mid := range append([]string{v.ID}, v.Copies...) {
			mv, _ := emu.View(mid)
			for _, a := range mv.Attempts {
				if a.Error != delivery.OutageError {
					reached++
				}
			}
			for _, p := range emu.PayPal().Postbacks(mid) {
				if p.Status == http.StatusOK && (p.Answer == string(paypal.Verified) || p.Answer == string(paypal.Invalid)) {
					answered++
				}
			}
		}
	}
	return answered, reached
}

// readStartBalances reads the balances of every customer a balance
// expectation names, before the scenario's first step.
func (r *runner) readStartBalances(ctx context.Context) error {
	for _, st := range r.sc.Steps {
		e, ok := st.(*Expect)
		if !ok || e.Customer == "" || r.startBalances[e.Customer] != nil {
			continue
		}
		br, ok := BalancesOf(r.env.Probe)
		if !ok {
			return nil // judged as skipped when the expectation runs
		}
		b, err := readBalances(ctx, br, e.Customer)
		if err != nil {
			return fmt.Errorf("the balances of customer %s before the first step: %w", e.Customer, err)
		}
		if r.startBalances == nil {
			r.startBalances = map[string]map[string]generate.Money{}
		}
		r.startBalances[e.Customer] = b
	}
	return nil
}

// expectBalance judges how far a customer's balances moved since the
// scenario started, once the listener is idle for the scenario's
// transactions.
func (r *runner) expectBalance(ctx context.Context, e *Expect) error {
	br, ok := BalancesOf(r.env.Probe)
	if !ok {
		return &skip{msg: "needs a probe that reads customers' balances (GET /probe/v1/customers/{id})"}
	}
	if err := r.settle(ctx); err != nil {
		return err
	}
	now, err := readBalances(ctx, br, e.Customer)
	if err != nil {
		return err
	}
	start := r.startBalances[e.Customer]
	currencies := map[string]bool{}
	for _, m := range []map[string]generate.Money{start, now} {
		for c := range m {
			currencies[c] = true
		}
	}
	for c := range e.BalanceChange {
		currencies[c] = true
	}
	var ev []string
	for _, c := range slices.Sorted(maps.Keys(currencies)) {
		ev = append(ev, fmt.Sprintf("customer %s's %s balance: %s when the scenario started, %s now", e.Customer, c, start[c], now[c]))
	}
	for _, c := range slices.Sorted(maps.Keys(currencies)) {
		want, _ := generate.ParseMoney(e.BalanceChange[c]) // checked when loaded; "" is 0
		if moved := now[c] - start[c]; moved != want {
			return fail(ev, "customer %s's %s balance moved by %s, want %s", e.Customer, c, moved, want)
		}
	}
	return nil
}

func readBalances(ctx context.Context, br BalanceReader, customer string) (map[string]generate.Money, error) {
	raw, err := br.Balances(ctx, customer)
	if err != nil {
		return nil, err
	}
	out := make(map[string]generate.Money, len(raw))
	for c, s := range raw {
		m, err := generate.ParseMoney(s)
		if err != nil {
			return nil, fmt.Errorf("customer %s: the probe's %s balance %q is not an amount", customer, c, s)
		}
		out[c] = m
	}
	return out, nil
}

// askedAgain reports whether every message of txn this scenario sent
// that owes a confirmation, each copy included, has been confirmed
// (posted back) at least twice.
func (r *runner) askedAgain(txn string) bool {
	n := 0
	for _, v := range r.views {
		c := r.confirmer(v.Provider)
		if v.TxnID != txn || c == nil {
			continue
		}
		for _, id := range append([]string{v.ID}, v.Copies...) {
			if c.Confirmations(id) < 2 {
				return false
			}
		}
		n++
	}
	return n > 0
}

func (r *runner) judgeTxn(e *Expect, known judgeable, txn string, t ProbeTransaction, absent bool) error {
	var err error
	var ev []string
	for _, f := range t.Effects {
		if f.Customer != "" && !slices.Contains(r.customers, f.Customer) {
			r.customers = append(r.customers, f.Customer)
		}
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
		want, _ := generate.ParseMoney(e.Net)
		got := generate.Money(0)
		if s := t.Net[e.Currency]; s != "" {
			if got, err = generate.ParseMoney(s); err != nil {
				return fail(ev, "transaction %s: the probe's net %q is not an amount", txn, s)
			}
		}
		if got != want {
			return fail(ev, "transaction %s nets %s %s, want %s", txn, got, e.Currency, want)
		}
	}
	if known.status && t.Status != e.TxnStatus {
		if absent {
			return fail(ev, "transaction %s is unknown to the listener, want status %s", txn, e.TxnStatus)
		}
		return fail(ev, "transaction %s is %s, want %s", txn, t.Status, e.TxnStatus)
	}
	if known.held && (t.Held != "") != *e.Held {
		return fail(ev, "transaction %s held=%v, want %v", txn, t.Held != "", *e.Held)
	}
	if known.payerName && t.PayerName != e.PayerName {
		return fail(ev, "transaction %s payer name is %q, want %q", txn, t.PayerName, e.PayerName)
	}
	return nil
}
