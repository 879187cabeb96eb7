package paypal_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/form"
)

const fuzzMessage = "mc_gross=19.95&protection_eligibility=Eligible&address_status=confirmed&payer_id=LPLWNMTBWMFAY" +
	"&first_name=J%F6rg&address_street=1+Main+St%0D%0AApt+2&payment_status=Completed&charset=windows-1252" +
	"&txn_id=61E67681CH3238416&verify_sign=AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf&ipn_track_id=3f1d2a"

// FuzzCheck: the verifier answers every postback without panicking, and
// never says VERIFIED to a body whose fields differ from the message's.
func FuzzCheck(f *testing.F) {
	clk := clock.NewManual(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
	eng, err := delivery.NewEngine(delivery.Config{Clock: clk})
	if err != nil {
		f.Fatal(err)
	}
	svc, err := paypal.New(paypal.Config{Clock: clk, Engine: eng, Mode: paypal.ModePayPal})
	if err != nil {
		f.Fatal(err)
	}
	// Notifications are off, so the message is kept (held) and never sent.
	if _, _, err := svc.Send(paypal.Notification{Body: []byte(fuzzMessage)}); err != nil {
		f.Fatal(err)
	}
	strictSvc, err := paypal.New(paypal.Config{Clock: clk, Engine: eng, Mode: paypal.ModeStrict})
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := strictSvc.Send(paypal.Notification{Body: []byte(fuzzMessage)}); err != nil {
		f.Fatal(err)
	}
	want, _ := form.Parse([]byte(fuzzMessage))

	for _, s := range []string{
		"cmd=_notify-validate&" + fuzzMessage,
		fuzzMessage + "&cmd=_notify-validate",
		"cmd=_notify-validate&" + string(bytes.Replace([]byte(fuzzMessage), []byte("%F6"), []byte("%C3%B6"), 1)),
		"cmd=_notify-validate&" + string(bytes.Replace([]byte(fuzzMessage), []byte("%0D%0A"), []byte("%0A"), 1)),
		"cmd=_notify-validate&txn_id=61E67681CH3238416",
		"cmd=_notify-validate&a=%zz", "", "&&&", "cmd=_notify-validate",
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, post bool) {
		method := "POST"
		if !post {
			method = "GET"
		}
		for _, s := range []*paypal.Service{svc, strictSvc} {
			v := s.Check(paypal.Postback{Method: method, Body: body, UserAgent: "fuzz/1.0"})
			switch v.Result {
			case paypal.Verified:
				got, err := form.Parse(body)
				if err != nil {
					t.Fatalf("VERIFIED a malformed body %q", body)
				}
				if !got.Del("cmd").Equal(want) {
					t.Fatalf("VERIFIED a body whose fields differ from the message: %q", body)
				}
			case paypal.Invalid:
				if v.Rule == "" {
					t.Fatalf("INVALID with no rule for %q", body)
				}
			default:
				t.Fatalf("verdict %q for %q", v.Result, body)
			}
		}
	})
}
