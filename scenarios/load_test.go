package scenarios_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
)

const head = "name: t\nprovider: paypal\nsteps:\n"

var _ = Describe("Loading scenarios", func() {
	It("loads every bundled scenario", func() {
		names, err := catalog.Names()
		Expect(err).NotTo(HaveOccurred())
		Expect(len(names)).To(BeNumerically(">=", 49))
		for _, n := range names {
			sc, err := catalog.Get(n)
			Expect(err).NotTo(HaveOccurred())
			Expect(sc.Steps).NotTo(BeEmpty())
		}
	})

	It("documents every key, step kind and field it accepts", func() {
		ref := scenarios.Reference()
		for _, kind := range []string{"send", "generate", "resend", "fault", "clear_fault", "outage", "advance", "expect"} {
			Expect(ref).To(MatchRegexp("(?m)^### "+kind+"\n\n[A-Z].+\\.\n"), kind)
		}
		Expect(ref).NotTo(MatchRegexp(`(?m)\|\s*\|$`), "a field without a doc tag")
		_, err := scenarios.Parse("example", []byte(scenarios.WorkedExample))
		Expect(err).NotTo(HaveOccurred())
	})

	It("reads a file and keeps each step's line", func() {
		path := filepath.Join(GinkgoT().TempDir(), "dup.yaml")
		Expect(os.WriteFile(path, []byte(head+"  - send: {as: pay, kind: web_accept}\n  - resend: {message: pay}\n  - expect: {txn: \"${pay.txn_id}\", effects: 1}\n"), 0o600)).To(Succeed())
		sc, err := scenarios.LoadFile(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(sc.Steps).To(HaveLen(3))
		Expect(sc.Steps[1].Line()).To(Equal(5))
		Expect(sc.Steps[1].Key()).To(Equal("resend"))
	})

	DescribeTable("refuses mistakes at load time, naming the file, the line and the choices",
		func(body, msg string) {
			_, err := scenarios.Parse("my.yaml", []byte(body))
			Expect(errors.Is(err, scenarios.ErrInvalid)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring(msg))
		},
		Entry("not YAML", "name: [", "my.yaml:1: not valid YAML"),
		Entry("unknown top-level field", "name: t\nprovider: paypal\nsteps: []\nowner: me\n", `my.yaml:4: unknown field "owner" in the scenario; want one of name, description, provider, values, steps`),
		Entry("unknown values", "name: t\nprovider: paypal\nvalues: random\nsteps: []\n", `my.yaml:3: values "random": want one of neutral, realistic`),
		Entry("missing provider", "name: t\nsteps:\n  - advance: {by: 1m}\n", "provider is required"),
		Entry("unknown provider", "name: t\nprovider: stripe\nsteps:\n  - advance: {by: 1m}\n", `provider "stripe": want one of paypal, paydo`),
		Entry("unknown step", head+"  - sned: {kind: web_accept}\n", `my.yaml:4: unknown step "sned"; want one of send, generate, resend, fault, clear_fault, outage, advance, expect`),
		Entry("unknown field in a step", head+"  - send: {knd: web_accept}\n", `my.yaml:4: unknown field "knd" in step send; want one of as, provider, kind, from, params`),
		Entry("unknown nested field", head+"  - send: {kind: web_accept, fault: {knd: invalid}}\n", `unknown field "knd" in step send.fault; want one of kind, count, delay, message`),
		Entry("unknown kind", head+"  - send: {kind: web_acept}\n", `my.yaml:4: kind "web_acept": want one of`),
		Entry("unknown param", head+"  - send: {kind: web_accept, params: {grosss: \"1.00\"}}\n", `params: json: unknown field "grosss"; want gross, currency`),
		Entry("a status PayPal never sends", head+"  - send: {kind: web_accept, params: {status: Bogus}}\n", `my.yaml:4: params.status "Bogus": not a value PayPal sends; want one of Canceled_Reversal, Completed`),
		Entry("unknown reference", head+"  - send: {as: pay, kind: web_accept}\n  - expect: {txn: \"${pya.txn_id}\", effects: 1}\n", `my.yaml:5: unknown name "pya"; earlier steps define pay`),
		Entry("reference before definition", head+"  - expect: {txn: \"${pay.txn_id}\", effects: 1}\n", `unknown name "pay": no earlier step is named with`),
		Entry("malformed reference", head+"  - send: {as: pay, kind: web_accept}\n  - expect: {txn: \"${pay}\", effects: 1}\n", "want ${name.field}"),
		Entry("unknown env reference", head+"  - send: {kind: web_accept, params: {currency: \"${env.currency}\"}}\n", "want one of ${env.payer_email}"),
		Entry("unknown lifecycle", head+"  - generate: {as: lc, lifecycle: pay_refnd}\n", `unknown lifecycle "pay_refnd": want one of`),
		Entry("unknown lifecycle step", head+"  - generate: {as: lc, lifecycle: pay_refund}\n  - send: {from: lc.refnd}\n", `from "lc.refnd": want lc.STEP with STEP one of pay, refund`),
		Entry("a name used twice", head+"  - send: {as: p, kind: web_accept}\n  - send: {as: p, kind: cart}\n", `name "p" is already used`),
		Entry("bad fault", head+"  - fault: {kind: sometimes}\n", `fault kind "sometimes": want one of`),
		Entry("bad duration", head+"  - advance: {by: soon}\n", `advance: by: duration "soon"`),
		Entry("an infinite advance", head+"  - advance: {by: Infd}\n", `advance: by: duration "Infd"`),
		Entry("an advance past a century", head+"  - advance: {by: 1e300d}\n", "longer than a century"),
		Entry("a net that is not an amount", head+"  - expect: {txn: X, net: 12abc}\n", `amount "12abc"`),
		Entry("bad verdict", head+"  - send: {as: p, kind: web_accept}\n  - expect: {message: p, verdict: OK}\n", `verdict "OK": want one of VERIFIED, INVALID, none`),
		Entry("an expectation of nothing", head+"  - send: {as: p, kind: web_accept}\n  - expect: {message: p}\n", "nothing is expected"),
		Entry("balances of no one", head+"  - expect: {balance_change: {USD: \"1.00\"}}\n", "balance_change needs customer: ID"),
		Entry("a customer with nothing expected", head+"  - expect: {customer: C1}\n", `customer "C1": nothing is expected of it`),
		Entry("a customer by reference", head+"  - send: {as: p, kind: web_accept}\n  - expect: {customer: \"${p.custom}\", balance_change: {USD: \"1.00\"}}\n", "give the listener's id, not a reference"),
		Entry("a balance in no currency", head+"  - expect: {customer: C1, balance_change: {dollars: \"1.00\"}}\n", `"dollars" is not a currency code`),
		Entry("a balance that is not an amount", head+"  - expect: {customer: C1, balance_change: {USD: lots}}\n", `balance_change USD: `),
		Entry("PayDo fields on PayPal", head+"  - send: {kind: web_accept, then: [2]}\n", "then, interval, source and forwarded_for are PayDo's"),
		Entry("PayDo without kind", "name: t\nprovider: paydo\nsteps:\n  - send: {params: {status: 2}}\n", "kind is required for PayDo"),
		Entry("PayDo bad param", "name: t\nprovider: paydo\nsteps:\n  - send: {kind: transfer, params: {state: 2}}\n", `unknown field "state"`),
	)
})

var _ = Describe("Scenarios built in Go", func() {
	It("run as those loaded from YAML: an advance of 4d moves the clock 4 days (it moved 0)", func() {
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(start)})
		Expect(err).NotTo(HaveOccurred())
		defer emu.Close()
		sc := &scenarios.Scenario{Name: "go-built", Provider: "paypal", Steps: []scenarios.Step{
			&scenarios.Advance{By: "4d"},
			&scenarios.Advance{By: "1h30m"},
		}}
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"paypal": "http://127.0.0.1:9/"}}, sc)
		Expect(res.Status).To(Equal(scenarios.Passed), res.Message)
		Expect(emu.Clock().Now()).To(Equal(start.Add(97*time.Hour + 30*time.Minute)))

		bad := &scenarios.Scenario{Name: "go-built", Provider: "paypal", Steps: []scenarios.Step{
			&scenarios.Advance{By: "soon"},
		}}
		res = scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"paypal": "http://127.0.0.1:9/"}}, bad)
		Expect(res.Status).To(Equal(scenarios.Error))
		Expect(res.Message).To(ContainSubstring(`duration "soon"`))
	})
})
