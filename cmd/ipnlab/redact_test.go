package main_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

var _ = Describe("a database password", func() {
	// Every DSN form ipnlab takes, with a password each output must hide.
	secrets := []string{"Us3rInfo", "Qu3ryParam", "Unp4rsable"}
	dsns := []string{
		"postgres://shop:Us3rInfo@127.0.0.1:1/shop?sslmode=disable",
		"postgres://127.0.0.1:1/shop?user=shop&password=Qu3ryParam",
		"postgres://shop:Unp4rsable%zz x@127.0.0.1:1/shop",
	}
	noSecret := func(what string, b []byte) {
		GinkgoHelper()
		for _, s := range secrets {
			Expect(string(b)).NotTo(ContainSubstring(s), "%s shows a password", what)
		}
	}

	It("is never shown by conform: not on the console, in the report, in JUnit or in the replay line", func() {
		dir := GinkgoT().TempDir()
		probeMap := filepath.Join(dir, "map.yaml")
		Expect(os.WriteFile(probeMap, []byte("effects: SELECT 1 AS txn_id, 's' AS status, 1 AS amount, 'USD' AS currency\ntransaction: SELECT 's' AS status\n"), 0o644)).To(Succeed())
		for i, dsn := range dsns {
			report, junit := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml")
			s := run("conform", "--listener", "http://127.0.0.1:1/ipn", "--emulator-addr", "127.0.0.1:0", "--probe", "sql:"+dsn, "--probe-map", probeMap,
				"--report", report, "--junit", junit)
			Expect(s).To(gexec.Exit(2), dsn)
			noSecret("the console", append(s.Out.Contents(), s.Err.Contents()...))
			Expect(string(s.Err.Contents())).To(ContainSubstring("[redacted]"), "the DSN is shown, without its password (%d)", i)
			for _, f := range []string{report, junit} {
				b, err := os.ReadFile(f)
				Expect(err).NotTo(HaveOccurred())
				noSecret(f, b)
			}
		}
	})

	It("is never shown by serve's log or errors", func() {
		for _, dsn := range dsns {
			s := run("serve", "--emulator-addr", "127.0.0.1:0", "--store", dsn)
			Expect(s).NotTo(gexec.Exit(0))
			noSecret("serve", append(s.Out.Contents(), s.Err.Contents()...))
		}
	})
})
