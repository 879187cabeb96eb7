package scenarios

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// ErrInvalid is wrapped by every load error.
var ErrInvalid = errors.New("invalid scenario")

// LoadError points at the line of a scenario file that is wrong.
type LoadError struct {
	File string
	Line int
	Msg  string
}

func (e *LoadError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *LoadError) Unwrap() error { return ErrInvalid }

// LoadFile reads and checks a scenario file.
func LoadFile(path string) (*Scenario, error) { return LoadFileFor(path, nil) }

// LoadFileFor is LoadFile for an emulator with plug-in providers (see
// ParseFor).
func LoadFileFor(path string, plugins []string) (*Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return ParseFor(path, raw, plugins)
}

// stepKinds are the step keys, in the order the docs list them (each
// documented in stepDocs).
var stepKinds = []string{"send", "generate", "resend", "fault", "clear_fault", "outage", "advance", "expect"}

// Parse reads and checks a scenario; name is used in error messages.
func Parse(name string, data []byte) (*Scenario, error) { return ParseFor(name, data, nil) }

// ParseFor is Parse for an emulator with plug-in providers (named in
// plugins) besides PayPal and PayDo: their send steps take kind, set,
// copies, seed and as, which mean what the provider says (see
// emulator.Sender).
func ParseFor(name string, data []byte, plugins []string) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &LoadError{File: name, Line: yamlLine(err), Msg: "not valid YAML: " + err.Error()}
	}
	if len(doc.Content) == 0 {
		return nil, &LoadError{File: name, Line: 1, Msg: "empty scenario"}
	}
	root := doc.Content[0]
	l := &loader{file: name, aliases: map[string]string{}, generated: map[string]*Generate{},
		providers: append(builtinProviders(), plugins...)}
	sc := &Scenario{File: name}
	top := map[string]*yaml.Node{}
	if err := l.mapping(root, "the scenario", topKeys(false), top); err != nil {
		return nil, err
	}
	for _, k := range topKeys(true) {
		if top[k] == nil {
			return nil, l.at(root, "%s is required", k)
		}
	}
	sc.Name, sc.Provider = top["name"].Value, top["provider"].Value
	if top["description"] != nil {
		sc.Description = top["description"].Value
	}
	if err := l.oneOf(top["provider"], "provider", sc.Provider, l.providers); err != nil {
		return nil, err
	}
	l.provider = sc.Provider
	sc.Values = ValuesNeutral
	if v := top["values"]; v != nil {
		if err := l.oneOf(v, "values", v.Value, valueModes); err != nil {
			return nil, err
		}
		sc.Values = v.Value
	}
	steps := top["steps"]
	if steps.Kind != yaml.SequenceNode || len(steps.Content) == 0 {
		return nil, l.at(steps, "steps: want a list of steps")
	}
	for _, n := range steps.Content {
		st, err := l.step(n)
		if err != nil {
			return nil, err
		}
		sc.Steps = append(sc.Steps, st)
	}
	return sc, nil
}

// envRefs are the suite settings scenarios may refer to as ${env.NAME}.
var envRefs = []string{"payer_email", "unaccepted_currency", "stranger_source"}

type loader struct {
	file      string
	provider  string
	providers []string          // built-in, then plug-ins
	aliases   map[string]string // alias -> provider, or "lifecycle"
	generated map[string]*Generate
}

func (l *loader) at(n *yaml.Node, format string, args ...any) error {
	return &LoadError{File: l.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

func (l *loader) oneOf(n *yaml.Node, what, v string, choices []string) error {
	if !slices.Contains(choices, v) {
		return l.at(n, "%s %q: want one of %s", what, v, strings.Join(choices, ", "))
	}
	return nil
}

// mapping checks that n is a mapping with only the allowed keys, and
// collects the value nodes.
func (l *loader) mapping(n *yaml.Node, what string, allowed []string, out map[string]*yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return l.at(n, "%s: want a mapping", what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return l.at(k, "unknown field %q in %s; want one of %s", k.Value, what, strings.Join(allowed, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return l.at(k, "field %q given twice in %s", k.Value, what)
		}
		out[k.Value] = n.Content[i+1]
	}
	return nil
}

// yamlKeys lists the yaml field names of a struct type.
func yamlKeys(v any) []string {
	t := reflect.TypeOf(v)
	var keys []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}

// decode checks n's keys against v's yaml fields, then decodes it.
func (l *loader) decode(n *yaml.Node, what string, v any) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if err := l.checkKeys(n, what, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		return l.at(n, "%s: %v", what, err)
	}
	return nil
}

// checkKeys refuses keys that t (a struct type) does not have, at every
// level of nesting.
func (l *loader) checkKeys(n *yaml.Node, what string, t reflect.Type) error {
	fields := map[string]*yaml.Node{}
	if err := l.mapping(n, what, yamlKeys(reflect.New(t).Elem().Interface()), fields); err != nil {
		return err
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		child, ok := fields[tag]
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ok && ft.Kind() == reflect.Struct && child.Kind == yaml.MappingNode {
			if err := l.checkKeys(child, what+"."+tag, ft); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loader) step(n *yaml.Node) (Step, error) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return nil, l.at(n, "a step is one of %s with its fields, e.g. `- send: {kind: web_accept}`", strings.Join(stepKinds, ", "))
	}
	key, body := n.Content[0], n.Content[1]
	here := at{line: key.Line}
	what := "step " + key.Value
	// decoded decodes the step's body into st, then checks it.
	decoded := func(st Step, check func() error) (Step, error) {
		if err := l.decode(body, what, st); err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	switch key.Value {
	case "send":
		s := &Send{at: here}
		return decoded(s, func() error { return l.checkSend(body, s) })
	case "generate":
		g := &Generate{at: here}
		return decoded(g, func() error { return l.checkGenerate(body, g) })
	case "resend":
		s := &Resend{at: here}
		return decoded(s, func() error { return l.alias(body, s.Message, true) })
	case "fault":
		f := &Fault{at: here}
		return decoded(f, func() error { return l.checkFault(body, f) })
	case "clear_fault":
		return decoded(&ClearFault{at: here}, nil)
	case "outage":
		return decoded(&Outage{at: here}, nil)
	case "advance":
		a := &Advance{at: here}
		return decoded(a, func() error {
			if _, err := a.Duration(); err != nil {
				return l.at(body, "advance: by: %v", err)
			}
			return nil
		})
	case "expect":
		e := &Expect{at: here}
		return decoded(e, func() error { return l.checkExpect(body, e) })
	}
	return nil, l.at(key, "unknown step %q; want one of %s", key.Value, strings.Join(stepKinds, ", "))
}

var refPattern = regexp.MustCompile(`\$\{([^}]*)\}`)

// refs checks every ${alias.field} in s against the aliases defined so far.
func (l *loader) refs(n *yaml.Node, s string) error {
	for _, m := range refPattern.FindAllStringSubmatch(s, -1) {
		parts := strings.Split(m[1], ".")
		if len(parts) < 2 {
			return l.at(n, "reference ${%s}: want ${name.field}, e.g. ${pay.txn_id}", m[1])
		}
		if parts[0] == "env" {
			if !slices.Contains(envRefs, parts[1]) {
				return l.at(n, "reference ${%s}: want one of %s", m[1], "${env."+strings.Join(envRefs, "}, ${env.")+"}")
			}
			continue
		}
		if err := l.alias(n, parts[0], false); err != nil {
			return err
		}
		if g, ok := l.generated[parts[0]]; ok {
			if len(parts) < 3 || !slices.Contains(g.steps, parts[1]) {
				return l.at(n, "reference ${%s}: %s is a %s lifecycle: want ${%s.STEP.field} with STEP one of %s",
					m[1], parts[0], g.Lifecycle, parts[0], strings.Join(g.steps, ", "))
			}
		}
	}
	return nil
}

// alias checks that name was defined by an earlier step's `as`.
func (l *loader) alias(n *yaml.Node, name string, message bool) error {
	if name == "" {
		return l.at(n, "message is required: the `as` name of an earlier send")
	}
	kind, ok := l.aliases[name]
	if !ok {
		names := make([]string, 0, len(l.aliases))
		for a := range l.aliases {
			names = append(names, a)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return l.at(n, "unknown name %q: no earlier step is named with `as`", name)
		}
		return l.at(n, "unknown name %q; earlier steps define %s", name, strings.Join(names, ", "))
	}
	if message && kind == "lifecycle" {
		return l.at(n, "%q names generated messages, not a sent one: send one with `from: %s.STEP, as: ...`", name, name)
	}
	return nil
}

func (l *loader) define(n *yaml.Node, as, kind string) error {
	if as == "" {
		return nil
	}
	if _, dup := l.aliases[as]; dup {
		return l.at(n, "name %q is already used by an earlier step", as)
	}
	l.aliases[as] = kind
	return nil
}

func (l *loader) checkSend(n *yaml.Node, s *Send) error {
	if s.Provider == "" {
		s.Provider = l.provider
	}
	if err := l.oneOf(n, "provider", s.Provider, l.providers); err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{s.Kind != "", s.From != "", s.Raw != ""} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return l.at(n, "send: give one of kind, from and raw")
	}
	if err := sendStepOf(s.Provider).check(l, n, s); err != nil {
		return err
	}
	if s.From != "" {
		alias, step, ok := strings.Cut(s.From, ".")
		if err := l.alias(n, alias, false); err != nil {
			return err
		}
		g, isGen := l.generated[alias]
		if !ok || !isGen || !slices.Contains(g.steps, step) {
			if !isGen {
				return l.at(n, "from %q: %s is not a generated lifecycle", s.From, alias)
			}
			return l.at(n, "from %q: want %s.STEP with STEP one of %s", s.From, alias, strings.Join(g.steps, ", "))
		}
		if len(s.Params) > 0 || len(s.Set) > 0 || s.Charset != "" {
			return l.at(n, "from sends a generated message as it is: params, set and charset do not apply")
		}
	}
	if s.Copies < 0 || s.Copies > 1000 {
		return l.at(n, "copies %d: want 1 to 1000", s.Copies)
	}
	if s.Order != "" || s.Pay != "" {
		switch {
		case !sendStepOf(s.Provider).takes(orderOption):
			return l.at(n, "order and pay are PayPal's")
		case s.From != "" || s.Raw != "":
			return l.at(n, "order names an order in a generated payment: from and raw send one as it is")
		case s.Pay != "" && s.Order == "":
			return l.at(n, "pay needs order: new, unknown, or an earlier send's name")
		case s.Order != "new" && s.Order != "unknown":
			// An earlier send's or generated lifecycle's order.
			if err := l.alias(n, s.Order, false); err != nil {
				return err
			}
		}
		if s.Pay != "" {
			if err := l.oneOf(n, "pay", s.Pay, payments); err != nil {
				return err
			}
		}
	}
	if s.Bursts != 0 {
		switch {
		case s.Bursts < 1 || s.Bursts > 100:
			return l.at(n, "bursts %d: want 1 to 100", s.Bursts)
		case !sendStepOf(s.Provider).takes(burstsOption):
			return l.at(n, "bursts is PayPal's")
		case s.Copies < 2:
			return l.at(n, "bursts needs copies of 2 or more: a burst is a payment's copies delivered together")
		case s.From != "" || s.Raw != "" || s.Seed != 0:
			return l.at(n, "bursts sends a new payment each time: from, raw and seed would send the same one")
		}
	}
	if s.Fault != nil {
		if err := l.checkFault(n, s.Fault); err != nil {
			return err
		}
		if s.Fault.Message != "" {
			return l.at(n, "fault.message does not apply inside send: the fault is this message's")
		}
	}
	for _, v := range s.Params {
		if err := l.refs(n, fmt.Sprint(v)); err != nil {
			return err
		}
	}
	for _, v := range s.Set {
		if err := l.refs(n, fmt.Sprint(v)); err != nil {
			return err
		}
	}
	return l.define(n, s.As, s.Provider)
}

// checkValues checks the PayPal params that take a closed list of values
// (those not given by a reference, known only when the step runs) for a
// message of kind ("" when the step replays one).
func checkValues(kind string, params map[string]any) error {
	var p generate.Params
	for key, dst := range map[string]*string{"status": &p.Status, "pending_reason": &p.PendingReason, "reason_code": &p.ReasonCode, "case_type": &p.CaseType} {
		if v, ok := params[key].(string); ok && !strings.Contains(v, "${") {
			*dst = v
		}
	}
	return p.CheckValues(kind)
}

// checkParams decodes params into T as the API would, refusing unknown names.
func checkParams[T any](l *loader, n *yaml.Node, params map[string]any) error {
	if len(params) == 0 {
		return nil
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return l.at(n, "params: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var t T
	if err := dec.Decode(&t); err != nil {
		return l.at(n, "params: %v; want %s", err, strings.Join(jsonKeys(t), ", "))
	}
	return nil
}

func jsonKeys(v any) []string {
	t := reflect.TypeOf(v)
	var keys []string
	for i := range t.NumField() {
		if tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]; tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}

func (l *loader) checkGenerate(n *yaml.Node, g *Generate) error {
	if g.As == "" {
		return l.at(n, "generate: as is required (steps send its messages with from: NAME.STEP)")
	}
	gen, err := generate.New(1, generate.Options{Charset: g.Charset})
	if err != nil {
		return l.at(n, "generate: %v", err)
	}
	if err := checkParams[emulator.Params](l, n, g.Params); err != nil {
		return err
	}
	steps, err := gen.Lifecycle(g.Lifecycle, generate.Params{})
	if err != nil {
		return l.at(n, "generate: %v", err)
	}
	for _, st := range steps {
		g.steps = append(g.steps, st.Name)
	}
	l.generated[g.As] = g
	return l.define(n, g.As, "lifecycle")
}

func (l *loader) checkFault(n *yaml.Node, f *Fault) error {
	p := paypal.Fault{Kind: paypal.FaultKind(f.Kind), Count: f.Count}
	d, _, err := f.parseDelay()
	if err != nil {
		return l.at(n, "%v", err)
	}
	p.Delay = d
	if err := p.Validate(); err != nil {
		return l.at(n, "%v", err)
	}
	if f.Message != "" {
		return l.alias(n, f.Message, true)
	}
	return nil
}

func (l *loader) checkExpect(n *yaml.Node, e *Expect) error {
	hasMsg := e.Acked != nil || e.AckStatus != 0 || e.History != "" || e.Verdict != "" || e.AnyVerified ||
		e.PostbacksMax != 0 || e.NoFlood || e.UserAgent || e.VerifyURL || e.Endpoint || len(e.Own) > 0
	hasTxn := e.Effects != nil || e.Net != "" || e.TxnStatus != "" || e.Held != nil || e.PayerName != ""
	hasCustomer := e.BalanceChange != nil
	hasOrder := e.Paid != nil || e.Received != ""
	switch {
	case hasOrder && e.Order == "":
		return l.at(n, "expect: paid and received need order: NAME (the send that named the order)")
	case e.Order != "" && !hasOrder:
		return l.at(n, "expect: order %q: nothing is expected of it; give paid or received", e.Order)
	case hasMsg && e.Message == "":
		return l.at(n, "expect: message expectations need message: NAME")
	case hasTxn && e.Txn == "":
		return l.at(n, "expect: transaction expectations need txn: (e.g. ${pay.txn_id})")
	case hasCustomer && e.Customer == "":
		return l.at(n, "expect: balance_change needs customer: ID (the listener's id of the customer)")
	case e.Customer != "" && !hasCustomer:
		return l.at(n, "expect: customer %q: nothing is expected of it; give balance_change", e.Customer)
	case !hasMsg && !hasTxn && !hasCustomer && !hasOrder:
		return l.at(n, "expect: nothing is expected; give message, txn or customer expectations")
	}
	if err := checkBalanceChange(e); err != nil {
		return l.at(n, "expect: %v", err)
	}
	if e.Message != "" {
		if err := l.alias(n, e.Message, true); err != nil {
			return err
		}
	}
	if err := l.refs(n, e.Txn); err != nil {
		return err
	}
	if e.Order != "" {
		if err := l.alias(n, e.Order, true); err != nil {
			return err
		}
	}
	if e.Received != "" {
		if _, err := generate.ParseMoney(e.Received); err != nil {
			return l.at(n, "received: %v", err)
		}
	}
	if e.Verdict != "" {
		if err := l.oneOf(n, "verdict", e.Verdict, verdicts); err != nil {
			return err
		}
	}
	if e.History != "" {
		if err := l.oneOf(n, "history", e.History, historyStatuses); err != nil {
			return err
		}
	}
	if e.Provider == "" {
		e.Provider = l.provider
	}
	if err := l.oneOf(n, "provider", e.Provider, l.providers); err != nil {
		return err
	}
	if e.Currency == "" {
		e.Currency = sendStepOf(e.Provider).currency()
	}
	if _, err := e.wait(); err != nil {
		return l.at(n, "%v", err)
	}
	if e.Net != "" {
		if _, err := generate.ParseMoney(e.Net); err != nil {
			return l.at(n, "net: %v", err)
		}
	}
	return nil
}

// checkBalanceChange checks a customer expectation: a literal id (its
// balances are read before the first step, when no reference can be
// resolved yet) and amounts by currency code.
func checkBalanceChange(e *Expect) error {
	if e.Customer == "" {
		return nil
	}
	if strings.Contains(e.Customer, "${") {
		return fmt.Errorf("customer %q: give the listener's id, not a reference: its balances are read when the scenario starts", e.Customer)
	}
	for cur, amount := range e.BalanceChange {
		if !currencyCode(cur) {
			return fmt.Errorf("balance_change: %q is not a currency code (three capital letters, e.g. USD)", cur)
		}
		if _, err := generate.ParseMoney(amount); err != nil {
			return fmt.Errorf("balance_change %s: %v", cur, err)
		}
	}
	return nil
}

func currencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// yamlLine digs the line out of a yaml error ("yaml: line 4: ...").
func yamlLine(err error) int {
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		return line
	}
	return 1
}
