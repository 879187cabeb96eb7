package conformance

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/internal/shell"
	"github.com/ipnlab/ipnlab/orders"
	"github.com/ipnlab/ipnlab/probe/sqlprobe"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/yamlstrict"
)

// Config is everything a conformance run needs. Precedence, highest
// first: command-line flags, IPNLAB_* environment variables, the YAML
// file (--config), the defaults below.
type Config struct {
	// Listener is the PayPal endpoint of the listener under test.
	Listener string `yaml:"listener" env:"IPNLAB_LISTENER"`
	// PayDoListener is its PayDo endpoint; empty disables the PayDo checks.
	PayDoListener string `yaml:"paydo_listener" env:"IPNLAB_PAYDO_LISTENER"`
	// WebhookListener is its PayPal REST webhook endpoint; empty disables
	// the PW- checks (package webhookchecks: importing it registers them
	// and applies these two settings to a session). WebhookID is the
	// webhook id that endpoint verifies with: the emulator subscribes it
	// under that id.
	WebhookListener string `yaml:"webhook_listener" env:"IPNLAB_WEBHOOK_LISTENER"`
	WebhookID       string `yaml:"webhook_id" env:"IPNLAB_WEBHOOK_ID"`
	// Probe is the base URL of the probe API; empty limits the run to
	// protocol checks.
	// It may instead be sql:DSN, the listener's own database, read
	// through ProbeMap (package sqlprobe).
	Probe string `yaml:"probe" env:"IPNLAB_PROBE" secret:"dsn"`
	// ProbeMap is the probe map file a sql: probe answers with.
	ProbeMap string `yaml:"probe_map" env:"IPNLAB_PROBE_MAP"`
	// Orders is the source of the orders of a shop that keeps orders
	// (package orders): cmd:COMMAND, an http(s) URL, or sql (the probe
	// map's open_order query). With it, every payment names a new order,
	// and the order checks run.
	Orders string `yaml:"orders" env:"IPNLAB_ORDERS"`
	// EmulatorAddr is where the in-process emulator listens: the listener
	// must use http://EmulatorAddr/cgi-bin/webscr as its verify URL.
	EmulatorAddr string `yaml:"emulator_addr" env:"IPNLAB_EMULATOR_ADDR"`
	// Level is protocol (emulator records only) or business (both levels).
	Level Level `yaml:"level" env:"IPNLAB_LEVEL"`
	// LabelFilter selects checks: comma-separated labels a check must all
	// have, "!label" for labels it must not have (e.g. "paypal,!slow").
	LabelFilter string `yaml:"label_filter" env:"IPNLAB_LABEL_FILTER"`
	// Focus runs only the checks whose ID contains one of these
	// comma-separated strings.
	Focus string `yaml:"focus" env:"IPNLAB_FOCUS"`
	// ReceiverEmail and ReceiverID are the merchant the listener serves.
	ReceiverEmail string `yaml:"receiver_email" env:"IPNLAB_RECEIVER_EMAIL"`
	ReceiverID    string `yaml:"receiver_id" env:"IPNLAB_RECEIVER_ID"`
	// PayerEmail is a customer the listener knows (business checks credit it).
	PayerEmail string `yaml:"payer_email" env:"IPNLAB_PAYER_EMAIL"`
	// UnacceptedCurrency is a currency the listener refuses.
	UnacceptedCurrency string `yaml:"unaccepted_currency" env:"IPNLAB_UNACCEPTED_CURRENCY"`
	// PayDoSource is the address PayDo notifications come from (the
	// listener must allow it); StrangerSource one it must refuse.
	PayDoSource string `yaml:"paydo_source" env:"IPNLAB_PAYDO_SOURCE"`
	// PayDoToken is the token PayDo's status lookup wants from the
	// listener (Authorization: Bearer), for the default project.
	PayDoToken     string `yaml:"paydo_token" env:"IPNLAB_PAYDO_TOKEN" secret:"true"`
	StrangerSource string `yaml:"stranger_source" env:"IPNLAB_STRANGER_SOURCE"`
	// AckTimeout is PayPal's ack window.
	AckTimeout time.Duration `yaml:"ack_timeout" env:"IPNLAB_ACK_TIMEOUT"`
	// Settle bounds each wait on the listener.
	Settle time.Duration `yaml:"settle" env:"IPNLAB_SETTLE"`
	// PostbackWait is how long a check waits for a postback (wall time).
	PostbackWait time.Duration `yaml:"postback_wait" env:"IPNLAB_POSTBACK_WAIT"`
	// Seed makes the generated messages reproducible (0: drawn, reported).
	// Each check's messages derive from it and the check's ID alone.
	Seed uint64 `yaml:"seed" env:"IPNLAB_SEED"`
	// Live sends messages as production does, without test_ipn=1, for a
	// listener configured as in production (one that drops sandbox
	// messages).
	Live bool `yaml:"live" env:"IPNLAB_LIVE"`
	// Implementation names the listener in reports.
	Name    string `yaml:"name" env:"IPNLAB_NAME"`
	Version string `yaml:"version" env:"IPNLAB_VERSION"`
	// JUnit and Report are output files (empty: none).
	JUnit  string `yaml:"junit" env:"IPNLAB_JUNIT"`
	Report string `yaml:"report" env:"IPNLAB_REPORT"`
	// Verbose prints each scenario step.
	Verbose bool `yaml:"verbose" env:"IPNLAB_VERBOSE"`
	// Parallel is how many checks run at once; 0 chooses (ChecksAtOnce).
	// Checks that move the shared clock, take the listener down or fault
	// the verifier for every message always run alone, after the others.
	Parallel int `yaml:"parallel" env:"IPNLAB_PARALLEL"`

	// Intercept makes the emulator stand in for PayPal's verify hosts
	// (an HTTPS proxy with ipnlab's CA, see package intercept): for a
	// listener that hard-codes https://ipnpb.paypal.com, given
	// HTTPS_PROXY and the CA (ipnlab ca env).
	Intercept bool `yaml:"intercept" env:"IPNLAB_INTERCEPT"`
	// TLSAddr, if set, also serves the verifier over TLS there, with a
	// certificate from ipnlab's CA for PayPal's hosts: the route without
	// a proxy, for a listener whose client reads no proxy variable (its
	// machine maps PayPal's host onto this address, on port 443).
	TLSAddr string `yaml:"tls_addr" env:"IPNLAB_TLS_ADDR"`

	// APIToken, if set, is required on the emulator's control API; without
	// it the emulator must listen on loopback (emulator.CheckExposure).
	APIToken string `yaml:"api_token" env:"IPNLAB_API_TOKEN" secret:"true"`

	// EmulatorListener, if set, is used instead of listening on
	// EmulatorAddr (Go callers that must know the port first).
	EmulatorListener net.Listener `yaml:"-"`
	// Container, if set, is the listener image this run started: replay
	// lines start it again instead of naming its (gone) address.
	Container *Container `yaml:"-"`
	// Command is how replay lines name the ipnlab binary: the path the
	// command line was run as (./bin/ipnlab) when "ipnlab" on the PATH is
	// not that binary; "" is "ipnlab".
	Command string `yaml:"-"`
	// Providers are plug-in providers the session's emulator hosts
	// besides PayPal and PayDo (emulator.Config.Providers): checks of
	// theirs join with Register, and run when Listeners names the
	// listener's endpoint for them.
	Providers []emulator.Factory `yaml:"-"`
	// Listeners are the listener's endpoints for plug-in providers, by
	// provider name (PayPal's and PayDo's are Listener and PayDoListener).
	Listeners map[string]string `yaml:"-"`
}

// Container is how a run started its listener from an image, for replay
// lines: the endpoints as given (paths resolved against the container)
// and the image flags.
type Container struct {
	Listener, PayDoListener, Probe string
	Flags                          []string
}

// command is what replay lines start with.
func (c *Config) command() string {
	if c.Command == "" {
		return "ipnlab"
	}
	return shell.Quote(c.Command)
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		EmulatorAddr: "127.0.0.1:8700", ReceiverEmail: emulator.DefaultReceiverEmail, ReceiverID: emulator.DefaultReceiverID,
		PayerEmail: scenarios.DefaultPayerEmail, UnacceptedCurrency: scenarios.DefaultUnacceptedCurrency,
		PayDoSource: scenarios.DefaultPayDoSource, StrangerSource: scenarios.DefaultStrangerSource, PayDoToken: paydo.DefaultAPIToken,
		AckTimeout: delivery.DefaultAckTimeout, Settle: scenarios.DefaultSettle, PostbackWait: scenarios.DefaultPostbackWait,
		Name: "listener under test", WebhookID: DefaultWebhookID,
	}
}

// DefaultWebhookID is the webhook id a listener's REST endpoint is
// subscribed under when the run names none.
const DefaultWebhookID = "WH-IPNLAB-CONFORMANCE"

// LoadFile reads a YAML config over c, refusing unknown fields.
func (c *Config) LoadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := yamlstrict.Decode(raw, c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// LoadEnv reads the IPNLAB_* variables that are set over c.
func (c *Config) LoadEnv(getenv func(string) (string, bool)) error {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("env")
		if name == "" {
			continue
		}
		s, ok := getenv(name)
		if !ok {
			continue
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%s=%q: %v", name, s, err)
			}
			f.SetInt(int64(d))
		case int:
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%s=%q: want a whole number", name, s)
			}
			f.SetInt(int64(n))
		case uint64:
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%s=%q: want a whole number", name, s)
			}
			f.SetUint(n)
		case bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", name, s)
			}
			f.SetBool(b)
		default:
			f.SetString(s)
		}
	}
	return nil
}

// Validate reports every problem with the config.
func (c *Config) Validate() error {
	var probs []string
	checkURL := func(name, raw string, required bool) {
		if raw == "" {
			if required {
				probs = append(probs, name+" is required: the listener's PayPal endpoint, e.g. http://127.0.0.1:8701/ipn/paypal")
			}
			return
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			probs = append(probs, fmt.Sprintf("%s %q: want an absolute http(s) URL", name, raw))
		}
	}
	checkURL("listener", c.Listener, true)
	checkURL("paydo_listener", c.PayDoListener, false)
	checkURL("webhook_listener", c.WebhookListener, false)
	if c.WebhookListener != "" && (c.WebhookID == "" || strings.ContainsAny(c.WebhookID, " \t\n/")) {
		probs = append(probs, fmt.Sprintf("webhook_id %q: want the webhook id the listener verifies with, without spaces or slashes", c.WebhookID))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Listeners)) {
		if flag, builtin := listenerFlags[name]; builtin {
			probs = append(probs, fmt.Sprintf("listeners[%q]: give %s's endpoint as %s", name, name, strings.TrimPrefix(flag, "--")))
			continue
		}
		checkURL(fmt.Sprintf("listeners[%q]", name), c.Listeners[name], false)
	}
	if strings.HasPrefix(c.Probe, sqlprobe.Scheme) {
		if c.ProbeMap == "" {
			probs = append(probs, "probe "+redact.DSN(c.Probe)+" needs probe_map: the SQL that answers the business checks' questions (docs/probe.md)")
		}
	} else {
		checkURL("probe", c.Probe, false)
		if c.ProbeMap != "" {
			probs = append(probs, "probe_map goes with a probe read from the listener's database: probe sql:DSN")
		}
	}
	if c.Orders == "sql" && !strings.HasPrefix(c.Probe, sqlprobe.Scheme) {
		probs = append(probs, "orders sql reads the probe map's open_order query: it needs probe sql:DSN")
	} else if c.Orders != "" && c.Orders != "sql" {
		if _, err := orders.Open(c.Orders); err != nil {
			probs = append(probs, err.Error())
		}
	}
	if c.Level == "" {
		c.Level = Protocol
		if c.Probe != "" {
			c.Level = Business
		}
	}
	switch {
	case c.Level != Protocol && c.Level != Business:
		probs = append(probs, fmt.Sprintf("level %q: want protocol or business", c.Level))
	case c.Level == Business && c.Probe == "":
		probs = append(probs, "level business needs probe: the base URL of the listener's probe API (docs/probe.md)")
	}
	if c.EmulatorListener == nil {
		if _, _, err := net.SplitHostPort(c.EmulatorAddr); err != nil {
			probs = append(probs, fmt.Sprintf("emulator_addr %q: want host:port", c.EmulatorAddr))
		} else if err := emulator.CheckExposure(c.EmulatorAddr, c.APIToken); err != nil {
			probs = append(probs, "emulator_addr "+err.Error())
		}
	}
	if c.TLSAddr != "" {
		if _, _, err := net.SplitHostPort(c.TLSAddr); err != nil {
			probs = append(probs, fmt.Sprintf("tls_addr %q: want host:port (127.0.0.1:443 for the route without a proxy)", c.TLSAddr))
		} else if err := emulator.CheckExposure(c.TLSAddr, c.APIToken); err != nil {
			probs = append(probs, "tls_addr "+err.Error())
		}
	}
	if c.Parallel < 0 || c.Parallel > 64 {
		probs = append(probs, fmt.Sprintf("parallel %d: want 1 to 64, or 0 to choose", c.Parallel))
	}
	if c.AckTimeout <= 0 || c.Settle <= 0 || c.PostbackWait <= 0 {
		probs = append(probs, "ack_timeout, settle and postback_wait must be positive")
	}
	for _, ip := range []string{c.PayDoSource, c.StrangerSource} {
		if net.ParseIP(ip) == nil {
			probs = append(probs, fmt.Sprintf("paydo_source/stranger_source %q: not an IP address", ip))
		}
	}
	if p := c.emptySelection(); p != "" {
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		return fmt.Errorf("conformance config:\n  %s", strings.Join(probs, "\n  "))
	}
	return nil
}

// emptySelection says why the focus and label filter select no check (a
// typo must not make a green run of nothing), naming what exists.
func (c *Config) emptySelection() string {
	if c.Focus == "" && c.LabelFilter == "" {
		return ""
	}
	labels := map[string]bool{}
	var ids []string
	for _, ch := range Checks() {
		if c.Selected(ch) {
			return ""
		}
		ids = append(ids, ch.ID)
		for _, l := range ch.Labels {
			labels[l] = true
		}
	}
	names := make([]string, 0, len(labels))
	for l := range labels {
		names = append(names, l)
	}
	sort.Strings(names)
	return fmt.Sprintf("no check matches focus %q and label filter %q; the labels are %s; the checks are %s",
		c.Focus, c.LabelFilter, strings.Join(names, ", "), strings.Join(ids, ", "))
}

// ChecksAtOnce is how many ordinary checks run at once: Parallel, or if
// 0, 4; through a SQL probe 8, as its checks spend most of their time
// waiting out the shop's quiet periods (docs/probe.md), when they load
// the listener no more than a waiting probe API check does.
func (c *Config) ChecksAtOnce() int {
	switch {
	case c.Parallel > 0:
		return c.Parallel
	case strings.HasPrefix(c.Probe, "sql:"):
		return 8
	}
	return 4
}

// WithDefaults is c with every zero field set to its default, so that a Go
// caller sets only what it knows (Listener, Probe ...); Validate still
// refuses what is set wrong. The command line starts from Defaults and
// validates what the flags say, zero included.
func (c Config) WithDefaults() Config {
	d := reflect.ValueOf(Defaults())
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.IsZero() && f.CanSet() {
			f.Set(d.Field(i))
		}
	}
	return c
}

// Selected reports whether a check is selected by the label filter and focus.
func (c *Config) Selected(ch Check) bool {
	for _, term := range strings.Split(c.LabelFilter, ",") {
		term = strings.TrimSpace(term)
		switch {
		case term == "":
		case strings.HasPrefix(term, "!"):
			if ch.HasLabel(term[1:]) {
				return false
			}
		case !ch.HasLabel(term):
			return false
		}
	}
	if c.Focus == "" {
		return true
	}
	for _, f := range strings.Split(c.Focus, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		// A whole ID names that check alone (PP-VERIFY-UTF-8 must not
		// also run a PP-VERIFY-UTF-8-... check); any other text is a part.
		if _, exact := Lookup(f); exact {
			if ch.ID == f {
				return true
			}
		} else if strings.Contains(ch.ID, f) {
			return true
		}
	}
	return false
}

// replay is the command line that runs check id alone with the run's
// seed: the same messages, against the same listener and settings.
func (c *Config) replay(id string, seed uint64) string {
	args := []string{c.command(), "conform", "--focus", id, "--seed", strconv.FormatUint(seed, 10)}
	return strings.Join(append(args, c.settingFlags()...), " ")
}

// ReplayScenario is the command line that runs scenario (a file or a
// bundled name) again with seed, with c's listener and settings.
func (c *Config) ReplayScenario(scenario string, seed uint64) string {
	args := []string{c.command(), "run", shell.Quote(scenario), "--seed", strconv.FormatUint(seed, 10)}
	return strings.Join(append(args, c.settingFlags()...), " ")
}

// SettingsSet names the setting flags c sets apart from their defaults
// (--listener, --ack-timeout, ...), in a fixed order.
func (c *Config) SettingsSet() []string {
	var out []string
	for _, a := range c.settingFlags() {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			out = append(out, name)
		}
	}
	return out
}

// settingFlags are the flags that reproduce c's listener and settings
// (those that differ from the defaults), in a fixed order.
func (c *Config) settingFlags() []string {
	d := Defaults()
	var out []string
	str := func(flag, v, def string) {
		if v != def {
			out = append(out, "--"+flag, shell.Quote(v))
		}
	}
	listener, payDo, probe := c.Listener, c.PayDoListener, c.Probe
	if c.Container != nil {
		listener, payDo, probe = c.Container.Listener, c.Container.PayDoListener, c.Container.Probe
	}
	str("listener", listener, "")
	str("paydo-listener", payDo, "")
	str("webhook-listener", c.WebhookListener, "")
	if c.WebhookListener != "" {
		str("webhook-id", c.WebhookID, d.WebhookID)
	}
	str("probe", redact.DSN(probe), "")
	str("orders", redact.DSN(c.Orders), "")
	str("probe-map", c.ProbeMap, "")
	if c.EmulatorListener == nil {
		str("emulator-addr", c.EmulatorAddr, d.EmulatorAddr)
	}
	if c.Probe != "" && c.Level == Protocol {
		out = append(out, "--level", string(Protocol))
	}
	str("receiver-email", c.ReceiverEmail, d.ReceiverEmail)
	str("receiver-id", c.ReceiverID, d.ReceiverID)
	str("payer-email", c.PayerEmail, d.PayerEmail)
	str("unaccepted-currency", c.UnacceptedCurrency, d.UnacceptedCurrency)
	str("paydo-source", c.PayDoSource, d.PayDoSource)
	str("stranger-source", c.StrangerSource, d.StrangerSource)
	str("ack-timeout", c.AckTimeout.String(), d.AckTimeout.String())
	str("settle", c.Settle.String(), d.Settle.String())
	str("postback-wait", c.PostbackWait.String(), d.PostbackWait.String())
	if c.Live {
		out = append(out, "--live")
	}
	if c.Container != nil {
		for _, f := range c.Container.Flags {
			out = append(out, shell.Quote(f))
		}
	}
	if c.Intercept {
		out = append(out, "--intercept")
	}
	str("tls-addr", c.TLSAddr, "")
	return out
}

// Redacted stands for a secret's value in reports.
const Redacted = "[redacted]"

// Resolved is the configuration as reports show it: every option by its
// YAML name, durations as text, secrets (fields tagged secret) redacted.
// Read by reflection, so an option added to Config is reported too.
func (c Config) Resolved() map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		switch val := v.Field(i).Interface().(type) {
		case time.Duration:
			out[name] = val.String()
		case Level:
			out[name] = string(val)
		default:
			out[name] = val
			switch f.Tag.Get("secret") {
			case "true":
				if !v.Field(i).IsZero() {
					out[name] = Redacted
				}
			case "dsn":
				out[name] = redact.DSN(fmt.Sprint(val))
			}
		}
	}
	return out
}

// replayRun is the command line that runs the same selection of checks
// again with seed, against the same listener.
func (c *Config) replayRun(seed uint64) string {
	args := []string{c.command(), "conform", "--seed", strconv.FormatUint(seed, 10)}
	args = append(args, c.settingFlags()...)
	for _, f := range []struct{ flag, v string }{{"focus", c.Focus}, {"label-filter", c.LabelFilter}} {
		if f.v != "" {
			args = append(args, "--"+f.flag, shell.Quote(f.v))
		}
	}
	return strings.Join(args, " ")
}
