package load_test

import "testing"

func BenchmarkZZIpnlabOnly(b *testing.B) {
	for b.Loop() {
		c, a := ipnlabRate(b, 40000)
		b.ReportMetric(c, "cycles/s")
		b.ReportMetric(a, "acks/s")
	}
}
