package conformance_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// BenchmarkSuite runs the whole suite against the reference listener and
// reports its wall time, next to the clock time the emulator simulated:
// with quick verification retries, without and with the slow check; at
// the listener's default flags (1 s first retry, as ipnlab listen runs);
// and against a listener that fails every outage check (each waits the
// postback window once, together).
func BenchmarkSuite(b *testing.B) {
	quick := listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20}
	for _, tc := range []struct {
		name, filter, mutant string
		verify               listener.VerifyConfig
	}{
		{"without-slow", "!slow", "", quick},
		{"all", "", "", quick},
		{"defaults", "", "", listener.VerifyConfig{}},
		{"outage-failing", "", "implicit-200", listener.VerifyConfig{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				l, err := listener.New(listener.Config{
					VerifyURL: "http://" + ln.Addr().String() + "/cgi-bin/webscr", ReceiverEmails: []string{"merchant@example.com"},
					Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}}, DB: b.TempDir() + "/b.db",
					Verify: tc.verify, Mutant: tc.mutant,
					PayDo: listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}}, Logger: quietLogger(),
				})
				if err != nil {
					b.Fatal(err)
				}
				_ = l.Start(context.Background())
				srv := serve(l)
				cfg := conformance.Defaults()
				cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
				cfg.AckTimeout, cfg.LabelFilter = 2*time.Second, tc.filter
				rep, err := conformance.RunAll(context.Background(), cfg, nil)
				srv.Close()
				l.Close()
				if err != nil || rep.Conformant() != (tc.mutant == "") {
					b.Fatalf("unexpected verdict: %v %+v", err, rep.Summary)
				}
				b.ReportMetric(rep.Seconds, "suite_wall_seconds")
				b.ReportMetric(rep.SimulatedSeconds, "simulated_s")
				b.ReportMetric(float64(rep.Summary.Passed), "checks")
			}
		})
	}
}
