package emulator

import (
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// The fake PayPal is a provider like any plug-in (package paypal,
// registered by New with paypal.Factory); these keep the emulator's Go API
// whole.

// SendPayPal creates and delivers a PayPal notification. Everything that
// belongs to the message (its body, its fault, its copies' target) is
// checked before its first byte leaves: a refused request sends nothing,
// and the fault is in force before the first delivery starts.
func (e *Emulator) SendPayPal(req SendRequest) (MessageView, error) { return e.paypal.Send(req) }

// Dispatch creates one PayPal notification and hands it to delivery
// without waiting for the first attempt or building its view, for tools
// that send many (ipnlab load). Copies and faults do not apply. It returns
// the message id.
func (e *Emulator) Dispatch(req SendRequest) (string, error) { return e.paypal.Dispatch(req) }

// Template builds a message as Dispatch would, without sending it: the
// exact bytes, its kind and seed. A tool that sends many (ipnlab load)
// builds a few and sends stamped copies (generate.Stamper) with
// DispatchBody.
func (e *Emulator) Template(req SendRequest) (body []byte, kind string, seed uint64, err error) {
	return e.paypal.Template(req)
}

// DispatchBody hands exact bytes to delivery, as Dispatch does once it
// has built them, and returns the message id.
func (e *Emulator) DispatchBody(body []byte, kind, notifyURL string, seed uint64) (string, error) {
	return e.paypal.DispatchBody(body, kind, notifyURL, seed)
}

// SendLifecycle generates every step first (so a bad request sends
// nothing), then schedules each on the clock. The first step goes at once;
// on a manual clock the answer comes after its first delivery.
func (e *Emulator) SendLifecycle(req LifecycleRequest) (LifecyclePlan, error) {
	return e.paypal.SendLifecycle(req)
}

// PreviewPayPal generates the message a SendRequest would send, without
// sending it.
func (e *Emulator) PreviewPayPal(req SendRequest) (Preview, error) { return e.paypal.Preview(req) }

// Live reports whether generated messages leave out test_ipn=1, as
// production messages do.
func (e *Emulator) Live() bool { return e.cfg.PayPal.Live }

// PayPal returns the fake PayPal.
func (e *Emulator) PayPal() *paypal.Service { return e.paypal.Service() }

// FixtureParams checks the params and converts them for package generate.
func FixtureParams(p Params) (generate.Params, error) { return paypal.FixtureParams(p) }
