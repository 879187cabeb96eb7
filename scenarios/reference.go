package scenarios

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// The tables the loader validates against, which Reference documents.

// topField is a key of the scenario file itself.
type topField struct {
	key      string
	required bool
	doc      string
}

var topFields = []topField{
	{"name", true, "the scenario's name, as reports show it"},
	{"description", false, "one sentence: what it shows"},
	{"provider", true, "paypal or paydo (or a plug-in's name): the default for its steps"},
	{"values", false, "how generated values are drawn: neutral (default: nothing a listener can trip on but what a step sets) or realistic (accented names, multi-line streets, empty fields, as PayPal sends)"},
	{"steps", true, "the steps, run in order; the first that fails ends the run"},
}

func topKeys(required bool) []string {
	var keys []string
	for _, f := range topFields {
		if f.required || !required {
			keys = append(keys, f.key)
		}
	}
	return keys
}

var (
	valueModes      = []string{ValuesNeutral, ValuesRealistic}
	verdicts        = []string{"VERIFIED", "INVALID", "none"}
	historyStatuses = []string{"Queued", "Sent", "Retrying", "Failed", "Held"}
	payments        = []string{PayExact, PayShort, PayWrongCurrency}
)

// stepDocs say what each step kind does, in stepKinds' order.
var stepDocs = map[string]struct {
	doc  string
	typ  any
	rule string // what the loader checks beyond each field's own value
}{
	"send":        {"Sends a notification to the listener under test, as the provider would (with retries on its schedule).", Send{}, "Give at most one of kind, from and raw. PayPal's fields (from, raw, unset, charset, flavour) and PayDo's (then, interval, source, forwarded_for) do not mix; a plug-in provider takes kind, set, copies, seed and as."},
	"generate":    {"Makes a lifecycle's messages without sending them, so that later sends can deliver them in any order with from: NAME.STEP.", Generate{}, ""},
	"resend":      {"Resends an earlier message by hand, as from IPN History (PayPal adds resend=true).", Resend{}, ""},
	"fault":       {"Makes the emulator's verifier misbehave for the listener's postbacks.", Fault{}, "slow needs a delay (at most 10m); the others take none."},
	"clear_fault": {"Clears the fault set by a fault step without message. Takes no fields: `- clear_fault: {}`.", ClearFault{}, ""},
	"outage":      {"Takes the listener down (every delivery fails, so the provider retries) or brings it back.", Outage{}, ""},
	"advance":     {"Moves the emulator's virtual clock, firing the deliveries that fall due: four days of PayPal resends take milliseconds.", Advance{}, ""},
	"expect":      {"States what must be true by now. Message expectations are judged from the emulator's records (protocol level); txn and customer expectations through the listener's probe (business level: skipped without one, see docs/probe.md).", Expect{}, "Message expectations need message; txn expectations need txn; balance_change needs customer; give at least one kind. Expectations that need a postback wait for it (within)."},
}

// Reference is the scenario format's reference in Markdown: every key,
// step kind, field and choice the loader accepts, and a worked example
// (docs/scenarios.md; ipnlab run --reference prints it).
func Reference() string {
	var b strings.Builder
	b.WriteString("## The file\n\nA scenario is a YAML mapping with these keys; any other key is an error naming its line.\n\n")
	b.WriteString("| key | required | meaning |\n|---|---|---|\n")
	for _, f := range topFields {
		req := ""
		if f.required {
			req = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.key, req, f.doc)
	}
	b.WriteString("\n## Steps\n\nEach step is a mapping with one key, its kind, whose value holds the step's fields: `- send: {as: pay, kind: web_accept}`. ")
	b.WriteString("The kinds: " + codeList(stepKinds) + ".\n")
	for _, kind := range stepKinds {
		d := stepDocs[kind]
		fmt.Fprintf(&b, "\n### %s\n\n%s\n", kind, d.doc)
		if rows := fieldRows(reflect.TypeOf(d.typ)); rows != "" {
			b.WriteString("\n| field | type | meaning |\n|---|---|---|\n" + rows)
		}
		if d.rule != "" {
			b.WriteString("\n" + d.rule + "\n")
		}
	}
	b.WriteString("\n## References\n\n")
	b.WriteString("Strings in `params`, `set` and `txn` may refer to earlier steps: `${NAME.FIELD}` is a field of the message sent `as: NAME` ")
	b.WriteString("(`id` and `txn_id` always; PayDo's `transaction` too; any field the message carries), ")
	b.WriteString("`${NAME.STEP.FIELD}` a field of a generated lifecycle's step, and `${env.SETTING}` a setting of the run: " + codeList(prefixed("env.", envRefs)) + ". ")
	b.WriteString("A reference to a name no earlier step defines is an error at load time.\n")
	b.WriteString("\n## Choices\n\n")
	fmt.Fprintf(&b, "- PayPal kinds (`send: kind`): %s.\n", codeList(generate.KindNames()))
	fmt.Fprintf(&b, "- PayDo kinds: %s.\n", codeList([]string{generate.PayDoTransfer, generate.PayDoCheckout}))
	b.WriteString("- Lifecycles (`generate: lifecycle`) and their steps:\n")
	gen, err := generate.New(1, generate.Options{})
	if err != nil {
		panic(err) // the default options are always valid
	}
	for _, name := range generate.LifecycleNames() {
		steps, err := gen.Lifecycle(name, generate.Params{})
		if err != nil {
			panic(err) // every listed lifecycle generates
		}
		names := make([]string, len(steps))
		for i, st := range steps {
			names[i] = st.Name
		}
		fmt.Fprintf(&b, "  - `%s`: %s\n", name, codeList(names))
	}
	fmt.Fprintf(&b, "- PayPal params: %s.\n", codeList(jsonKeys(emulator.Params{})))
	fmt.Fprintf(&b, "- PayDo params: %s.\n", codeList(jsonKeys(emulator.PayDoParams{})))
	kinds := make([]string, len(paypal.FaultKinds))
	for i, k := range paypal.FaultKinds {
		kinds[i] = string(k)
	}
	fmt.Fprintf(&b, "- Fault kinds: %s.\n", codeList(kinds))
	fmt.Fprintf(&b, "- `values`: %s; `verdict`: %s; `history`: %s; `pay`: %s.\n", codeList(valueModes), codeList(verdicts), codeList(historyStatuses), codeList(payments))
	b.WriteString("\n## A worked example\n\n```yaml\n" + WorkedExample + "```\n")
	return b.String()
}

// WorkedExample is the example docs/scenarios.md shows; a spec runs it
// against the reference listener.
const WorkedExample = `name: refund-after-outage
description: A payment PayPal could only deliver after an outage is credited once; its refund then debits it in full.
provider: paypal
steps:
  - generate: {as: lc, lifecycle: pay_refund, params: {gross: "80.00"}}
  - outage: {down: true}
  - send: {as: pay, from: lc.pay}
  - expect: {message: pay, acked: false, history: Retrying}
  - outage: {down: false}
  # PayPal resends after 10 s, 30 s, 70 s, ... of its clock.
  - advance: {by: 2m}
  - expect: {message: pay, acked: true, verdict: VERIFIED, no_flood: true}
  - expect: {txn: "${pay.txn_id}", effects: 1, net: "80.00"}
  - send: {as: refund, from: lc.refund}
  - expect: {message: refund, verdict: VERIFIED}
  - expect: {txn: "${pay.txn_id}", effects: 2, net: "0.00"}
  # The customer (C1 at the reference listener) ends where it started.
  - expect: {customer: C1, balance_change: {USD: "0.00"}}
`

// fieldRows is a Markdown table body: one row per yaml field of t.
func fieldRows(t reflect.Type) string {
	var b strings.Builder
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", key, typeName(f.Type), f.Tag.Get("doc"))
	}
	return b.String()
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Struct {
			return "mapping"
		}
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "true/false"
	case reflect.Int, reflect.Uint64:
		return "integer"
	case reflect.Map:
		return "mapping"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	}
	return t.String()
}

func codeList(items []string) string {
	return "`" + strings.Join(items, "`, `") + "`"
}

func prefixed(prefix string, items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = prefix + s
	}
	return out
}
