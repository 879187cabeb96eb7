package scenarios

import (
	"fmt"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Why a message was never posted back, under --intercept. The emulator's
// records alone say "never posted back"; the proxy tells which of the
// likely stories it was, in this order: the listener's HTTP client never
// came to the proxy (it ignores its proxy variables), it came and the
// TLS handshake failed (it does not trust the CA), it asked the proxy for
// a host it does not serve, it posted back other messages to the
// emulator's plain URL, or, reaching the verifier for other messages, it
// refused this one itself.

// notPostedBack is the failure text for a message never posted back
// (msg), with what the proxy saw since it was delivered.
func (r *runner) notPostedBack(msg string, v emulator.MessageView) string {
	if why := r.reachStory(v); why != "" {
		msg += ": " + why
	}
	return msg
}

// reachStory explains, from the proxy's record since v was delivered,
// why v was never posted back; "" without --intercept.
func (r *runner) reachStory(v emulator.MessageView) string {
	in := r.env.Intercept
	if in == nil || in.ProxyURL == "" {
		return ""
	}
	since := r.deliveredAt(v)
	traffic, ok := r.env.Emulator.ProxyTraffic(since)
	if !ok {
		return ""
	}
	return in.Story(traffic, plainPostbacks(r.env.Emulator), "since it was delivered")
}

// plainPostbacks counts the postbacks to the emulator's plain URL: a
// listener posting there does so for every message, so any in the
// session tells.
func plainPostbacks(emu *emulator.Emulator) int {
	n := 0
	for _, p := range emu.PayPal().Postbacks("") {
		if p.Endpoint == paypal.EndpointNone {
			n++
		}
	}
	return n
}

// Story says, from the proxy's traffic over a span (when: "since it was
// delivered", "during the run") and the postbacks to the emulator's
// plain URL, why a listener's postbacks did not reach the verifier: the
// first that fits of a tunnel that worked (the listener refused the
// message itself), failed handshakes (the CA is not trusted), refused
// requests (a host not served), plain-URL postbacks, no connection at all
// (proxy variables ignored).
func (in *Intercept) Story(traffic intercept.Traffic, plain int, when string) string {
	tunnelled := traffic.Count(intercept.Tunnelled) + traffic.Count(intercept.Forwarded)
	failed, refused := traffic.Count(intercept.HandshakeFailed), traffic.Count(intercept.Refused)
	switch {
	case tunnelled > 0:
		return fmt.Sprintf("the listener reached the verifier through the proxy %d time(s) %s, so it refused this message itself before asking", tunnelled, when)
	case failed > 0:
		last, _ := traffic.Last(intercept.HandshakeFailed)
		return fmt.Sprintf("%d connection(s) to %s reached ipnlab's proxy %s, but TLS failed (%s): the listener's HTTP client does not trust ipnlab's CA (%s); "+
			"give it what `ipnlab ca env` prints for its stack (docs/ci.md, \"Stacks\"), or add the CA to the trust store it uses", failed, last.Host, when, last.Detail, in.CA)
	case refused > 0:
		last, _ := traffic.Last(intercept.Refused)
		return fmt.Sprintf("the listener asked ipnlab's proxy for %s %s, which it refused (%s): it stands in for %s only", last.Host, when, last.Detail, strings.Join(intercept.Hosts, ", "))
	case plain > 0:
		return fmt.Sprintf("the listener posted %d message(s) back to the emulator's plain URL instead of PayPal's host: under --intercept, drop its verify URL setting, or run without --intercept", plain)
	}
	return fmt.Sprintf("no connection reached ipnlab's proxy (%s) %s: the listener's HTTP client ignores its proxy variables; "+
		"give it what `ipnlab ca env` prints for its stack (docs/ci.md, \"Stacks\"), or serve PayPal's hosts without a proxy (docs/ci.md, \"Without a proxy\")", in.ProxyURL, when)
}

// deliveredAt is the wall time the runner first heard of v's delivery
// (any copy), or the zero time.
func (r *runner) deliveredAt(v emulator.MessageView) time.Time {
	r.eventsMu.Lock()
	defer r.eventsMu.Unlock()
	var at time.Time
	for _, id := range append([]string{v.ID}, v.Copies...) {
		for _, ev := range r.timeline[id] {
			if ev.typ == events.Attempt && (at.IsZero() || ev.at.Before(at)) {
				at = ev.at
			}
		}
	}
	return at
}
