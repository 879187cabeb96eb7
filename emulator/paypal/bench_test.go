package paypal_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// BenchmarkCheck judges a byte-exact postback and a re-encoded one; a bare
// byte comparison of the same size is the baseline in the same run.
func BenchmarkCheck(b *testing.B) {
	clk := clock.NewManual(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	eng, _ := delivery.NewEngine(delivery.Config{Clock: clk})
	defer eng.Close()
	svc, _ := paypal.New(paypal.Config{Clock: clk, Engine: eng})
	body := tricky.Encode()
	if _, _, err := svc.Send(paypal.Notification{Body: body}); err != nil {
		b.Fatal(err)
	}
	good := append([]byte("cmd=_notify-validate&"), body...)
	bad := bytes.Replace(good, []byte("J%F6rg"), []byte("J%C3%B6rg"), 1)
	for name, pb := range map[string][]byte{"verified": good, "invalid-charset": bad} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				svc.Check(paypal.Postback{Method: "POST", Body: pb, UserAgent: "bench"})
			}
		})
	}
	b.Run("baseline=bytes.Equal", func(b *testing.B) {
		other := append([]byte(nil), good...)
		for b.Loop() {
			_ = bytes.Equal(good[21:], other[21:])
		}
	})
}
