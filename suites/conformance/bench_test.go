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
// reports its wall time without and with the slow check, next to the
// clock time the emulator simulated.
func BenchmarkSuite(b *testing.B) {
	for _, tc := range []struct {
		name, filter string
	}{{"without-slow", "!slow"}, {"all", ""}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				l, err := listener.New(listener.Config{
					VerifyURL: "http://" + ln.Addr().String() + "/cgi-bin/webscr", ReceiverEmails: []string{"merchant@example.com"},
					Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}}, DB: b.TempDir() + "/b.db",
					Verify: listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20},
					PayDo:  listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}}, Logger: quietLogger(),
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
				if err != nil || !rep.Conformant() {
					b.Fatalf("reference listener not conformant: %v %+v", err, rep.Summary)
				}
				b.ReportMetric(rep.Seconds, "suite_wall_seconds")
				b.ReportMetric(rep.SimulatedSeconds, "simulated_s")
				b.ReportMetric(float64(rep.Summary.Passed), "checks")
			}
		})
	}
}
