// Package sqlprobe answers the probe contract (package probe) from a
// listener's own database, for listeners that serve no probe API (a shop
// plugin, a third-party integration): a map gives the SQL that answers each
// question the business checks ask, and the answers are normalised into
// the probe's types, so every business check works unchanged. It only
// reads: connections are opened read-only where the driver allows, and
// any statement but a single SELECT or WITH is refused.
package sqlprobe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/probe"
)

// ErrMap wraps every error in a probe map.
var ErrMap = errors.New("invalid probe map")

// MapError points at the line of a probe map that is wrong.
type MapError struct {
	File string
	Line int
	Msg  string
	Err  error // the cause callers may branch on, if any (ErrNotOneQuery)
}

func (e *MapError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap lets callers test errors.Is(err, ErrMap), and the cause.
func (e *MapError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrMap, e.Err}
	}
	return []error{ErrMap}
}

// The map's queries take these parameters, written :name.
const (
	ParamProvider = "provider" // paypal or paydo
	ParamTxnID    = "txn_id"   // the transaction asked about
	ParamCustomer = "customer" // the customer whose balances are asked for
	ParamOrder    = "order"    // the order asked about (orders)
	ParamAmount   = "amount"   // the amount an order must cost (open_order)
	ParamCurrency = "currency" // its currency (open_order)
)

// query is one question of the contract, with what its answer must hold.
type query struct {
	key      string
	required bool
	params   []string // the parameters it may use
	columns  []string // the columns its rows must have
	optional []string // columns it may have
	doc      string
}

// queries are the map's keys: the loader checks against them, and the
// documentation lists them.
var queries = []query{
	{key: "effects", required: true, params: []string{ParamProvider, ParamTxnID},
		columns: []string{"txn_id", "status", "amount", "currency"}, optional: []string{"customer"},
		doc: "one row per balance effect of the transaction :txn_id and of its children (refunds, reversals: parent_txn_id = :txn_id), oldest first; amount in currency units, debits negative"},
	{key: "transaction", required: true, params: []string{ParamProvider, ParamTxnID},
		columns: []string{"status"}, optional: []string{"parent_txn_id", "customer", "payer_name", "held"},
		doc: "the transaction's own row (no row: the listener does not know it): its latest status, and optionally parent_txn_id, customer, payer_name (decoded) and held (why it waits, empty if it does not)"},
	{key: "idle", params: []string{ParamProvider, ParamTxnID},
		columns: []string{"busy"},
		doc:     "optional: one row, busy = how many notifications are still being processed (0: idle); :txn_id is the transaction asked about, or empty for all. Without it, the adapter waits until the answers stop changing for settle"},
	{key: "balances", params: []string{ParamCustomer},
		columns: []string{"currency", "balance"},
		doc:     "optional: one row per currency of the customer :customer's balances (balance in currency units; no row: nothing). Without it, balance expectations are skipped and explore does not check balances"},
	{key: "orders", params: []string{ParamOrder},
		columns: []string{"paid", "received", "currency"},
		doc:     "optional, for a shop that keeps orders: one row per currency received for the order :order (paid: whether the shop marked it paid, 1 or 0, true or false; received: what it counted as paid, in currency units); no row: the shop has no such order"},
	{key: "open_order", params: []string{ParamAmount, ParamCurrency},
		columns: []string{"ref", "amount", "currency"}, optional: []string{"field"},
		doc: "optional, an order source (--orders sql): unpaid orders the harness may pay, of :amount in :currency where the shop has them (ref as the message names it; field: invoice, custom or item_number, default invoice); the harness pays each once"},
}

// DefaultSettle is how long the answers must stay the same, without an
// idle query, for the listener to count as idle before its pace is
// learned, and the longest quiet period after (a failing judgement waits
// failFactor times it, pace.go).
const DefaultSettle = 200 * time.Millisecond

// Map is a validated probe map.
type Map struct {
	File    string
	queries map[string]string
	lines   map[string]int
	// Settle is how long answers must stay the same to count as idle when
	// the map has no idle query.
	Settle time.Duration
	// Knows is what the map declares it answers beyond money (its knows
	// key); nil when it declares nothing, and then Open infers holds and
	// payer names from the transaction query's columns.
	Knows []probe.Fact
	// knowsDeclared is whether the map has a knows key.
	knowsDeclared bool
}

// Query returns the SQL of a key ("" when the map has none).
func (m *Map) Query(key string) string { return m.queries[key] }

// LoadMap reads and checks a probe map file.
func LoadMap(path string) (*Map, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("probe map: %w", err)
	}
	return ParseMap(path, raw)
}

// ParseMap checks a probe map; name is used in error messages.
func ParseMap(name string, data []byte) (*Map, error) {
	at := func(line int, format string, args ...any) error {
		return &MapError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, at(1, "not valid YAML: %v", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, at(1, "want a mapping of %s", strings.Join(keys(), ", "))
	}
	root := doc.Content[0]
	m := &Map{File: name, queries: map[string]string{}, lines: map[string]int{}, Settle: DefaultSettle}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if _, dup := m.lines[k.Value]; dup {
			return nil, at(k.Line, "%s given twice", k.Value)
		}
		m.lines[k.Value] = k.Line
		if k.Value == "settle" {
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 || d > time.Minute {
				return nil, at(v.Line, "settle %q: want a duration up to 1m, such as 500ms", v.Value)
			}
			m.Settle = d
			continue
		}
		if k.Value == "knows" {
			var names []string
			if v.Kind == yaml.SequenceNode {
				for _, n := range v.Content {
					names = append(names, n.Value)
				}
			}
			facts, err := probe.ParseFacts(names)
			if v.Kind != yaml.SequenceNode || err != nil {
				why := "want a list"
				if err != nil {
					why = err.Error()
				}
				return nil, at(v.Line, "knows: %s, such as [statuses, holds]: what the map answers beyond money (%s)", why, probe.FactList(probe.Facts))
			}
			m.Knows, m.knowsDeclared = facts, true
			continue
		}
		q, ok := lookup(k.Value)
		if !ok {
			return nil, at(k.Line, "unknown key %q; want one of %s", k.Value, strings.Join(append(keys(), "settle", "knows"), ", "))
		}
		if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
			return nil, at(v.Line, "%s: want the SQL query as text", k.Value)
		}
		if err := checkStatement(v.Value); err != nil {
			return nil, at(v.Line, "%s: %v", k.Value, err)
		}
		if p := positional.FindString(maskQuoted(stripComments(v.Value))); p != "" {
			return nil, at(v.Line, "%s: %s is a driver's placeholder: write the map's parameters by name, :%s", k.Value, p, strings.Join(q.params, ", :"))
		}
		_, names := bind(v.Value, "?")
		for _, n := range names {
			if !slices.Contains(q.params, n) {
				return nil, at(v.Line, "%s: unknown parameter :%s; want :%s", k.Value, n, strings.Join(q.params, ", :"))
			}
		}
		m.queries[k.Value] = v.Value
	}
	for _, q := range queries {
		if q.required && m.queries[q.key] == "" {
			return nil, at(root.Line, "%s is required: %s", q.key, q.doc)
		}
	}
	return m, nil
}

// positional finds a driver's own placeholder ($1), which the map does not
// take: its parameters have names.
var positional = regexp.MustCompile(`\$[0-9]+`)

// Line is where key is in the map's file (its first line when absent).
func (m *Map) Line(key string) int {
	if l, ok := m.lines[key]; ok {
		return l
	}
	return 1
}

func lookup(key string) (query, bool) {
	for _, q := range queries {
		if q.key == key {
			return q, true
		}
	}
	return query{}, false
}

func keys() []string {
	out := make([]string, len(queries))
	for i, q := range queries {
		out[i] = q.key
	}
	return out
}

// checkStatement refuses anything but one SELECT or WITH statement: the
// adapter reads a database it does not own.
func checkStatement(sql string) error {
	text := stripComments(sql)
	body := strings.TrimSpace(text)
	body = strings.TrimSpace(strings.TrimSuffix(body, ";"))
	if strings.Contains(maskQuoted(body), ";") {
		return errors.New("one statement only: a probe map's queries only read")
	}
	first := strings.ToUpper(strings.FieldsFunc(body, func(r rune) bool { return !unicode.IsLetter(r) })[0])
	if first != "SELECT" && first != "WITH" {
		return fmt.Errorf("a %s statement: want a SELECT (or WITH ... SELECT): a probe map's queries only read", first)
	}
	return nil
}

// stripComments removes -- and /* */ comments outside quotes.
func stripComments(sql string) string {
	var b strings.Builder
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				j++
			}
			b.WriteString(sql[i:min(j+1, len(sql))])
			i = j
		case strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 3
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// maskQuoted blanks what is inside quotes.
func maskQuoted(sql string) string {
	out := []byte(sql)
	var quote byte
	for i, c := range out {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			out[i] = ' '
		case c == '\'' || c == '"':
			quote = c
		}
	}
	return string(out)
}

// bind rewrites :name parameters (outside quotes; not :: casts) into the
// driver's placeholders: "?" for each, or "$" for $1, $2 ... It returns
// the rewritten query and the parameter names in order.
func bind(sql, style string) (string, []string) {
	var b bytes.Buffer
	var names []string
	sql = stripComments(sql)
	masked := maskQuoted(sql)
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		if c != ':' || masked[i] != ':' || (i > 0 && sql[i-1] == ':') || (i+1 < len(sql) && sql[i+1] == ':') {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(sql) && (sql[j] == '_' || unicode.IsLetter(rune(sql[j])) || unicode.IsDigit(rune(sql[j]))) {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		names = append(names, sql[i+1:j])
		if style == "$" {
			fmt.Fprintf(&b, "$%d", len(names))
		} else {
			b.WriteString("?")
		}
		i = j - 1
	}
	return b.String(), names
}
