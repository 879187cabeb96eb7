package conformance_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
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
				l, err := flawed.New(listener.Config{
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

// BenchmarkBusinessProbes runs the PayPal business level against the
// reference listener three ways in each iteration, and reports the ratio
// within the run: through its probe API, through its database with
// docs/probe-map-reference.yaml, and through that map without its idle
// query (the adapter settles on evidence and on answers that stop
// changing, at the pace it learned of the shop). The target: no idle
// query costs at most twice the HTTP probe's time. Each runs with its
// default checks at once (8 through a map, 4 through the probe API).
func BenchmarkBusinessProbes(b *testing.B) {
	ref, err := os.ReadFile("../../docs/probe-map-reference.yaml")
	if err != nil {
		b.Fatal(err)
	}
	noIdle := regexp.MustCompile(`(?m)^idle: \|\n(  .*\n)+`).ReplaceAll(ref, nil)
	if bytes.Equal(noIdle, ref) {
		b.Fatal("docs/probe-map-reference.yaml has no idle query to drop")
	}
	noIdleFile := filepath.Join(b.TempDir(), "no-idle.yaml")
	if err := os.WriteFile(noIdleFile, noIdle, 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(probeMap string) float64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		db := filepath.Join(b.TempDir(), "ref.db")
		l, err := listener.New(listener.Config{
			VerifyURL: "http://" + ln.Addr().String() + "/cgi-bin/webscr", ReceiverEmails: []string{"merchant@example.com"},
			Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}}, DB: db,
			Verify: listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20}, Logger: quietLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		_ = l.Start(context.Background())
		srv := serve(l)
		defer func() { srv.Close(); l.Close() }()
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL
		if probeMap != "" {
			cfg.Probe, cfg.ProbeMap = "sql:sqlite:"+db, probeMap
		}
		cfg.AckTimeout, cfg.LabelFilter, cfg.Level, cfg.Seed = 2*time.Second, "business", conformance.Business, 7
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		if err != nil || !rep.Conformant() {
			b.Fatalf("unexpected verdict through %q: %v %+v", probeMap, err, rep.Summary)
		}
		return rep.Seconds
	}
	for b.Loop() {
		httpS := run("")
		idleS := run("../../docs/probe-map-reference.yaml")
		noIdleS := run(noIdleFile)
		b.ReportMetric(httpS, "http_probe_s")
		b.ReportMetric(idleS, "sql_idle_s")
		b.ReportMetric(noIdleS, "sql_no_idle_s")
		b.ReportMetric(noIdleS/httpS, "no_idle_vs_http")
	}
}
