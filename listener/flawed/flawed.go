// Package flawed builds the mutant gallery's listeners (package
// listener/mutants): the reference listener with one bug real IPN
// listeners have, each a decoration of the reference listener at one of
// its seams: its Verifier (Config.WrapVerifier), its handler
// (Config.WrapHandler), its business rules (Config.WrapRules), its store
// (Config.WrapStore) or its configuration. The listener a team adopts
// carries none of them.
package flawed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/listener/store"
)

// New is listener.New for a configuration that may name a mutant.
func New(cfg listener.Config) (*listener.Listener, error) {
	cfg, err := Configure(cfg)
	if err != nil {
		return nil, err
	}
	return listener.New(cfg)
}

// NewWithStore is listener.NewWithStore for a configuration that may name
// a mutant.
func NewWithStore(cfg listener.Config, st store.Store) (*listener.Listener, error) {
	cfg, err := Configure(cfg)
	if err != nil {
		return nil, err
	}
	return listener.NewWithStore(cfg, st)
}

// Configure returns cfg with the mutant it names built at its seam: the
// decorations set, Config.Mutant cleared (the listener is the reference
// one, decorated). A configuration that names none is returned as it is.
// A team's own decorations stay: its verifier and store decorations under
// the mutant's, its middleware and rules around it.
func Configure(cfg listener.Config) (listener.Config, error) {
	if cfg.Mutant == "" {
		return cfg, nil
	}
	m, ok := mutants.Lookup(cfg.Mutant)
	if !ok {
		var names []string
		for _, m := range mutants.All() {
			names = append(names, string(m.Name))
		}
		return cfg, fmt.Errorf("mutant %q: want one of %s", cfg.Mutant, strings.Join(names, ", "))
	}
	d, ok := decorations[m.Name]
	if !ok {
		return cfg, fmt.Errorf("mutant %s: no decoration of the listener's %s is built for it", m.Name, m.Seam)
	}
	e := &env{cfg: cfg.WithDefaults()}
	innerVerifier, innerHandler, innerRules, innerStore := cfg.WrapVerifier, cfg.WrapHandler, cfg.WrapRules, cfg.WrapStore
	if d.webhook != nil {
		innerWebhook := cfg.WrapWebhookVerifier
		cfg.WrapWebhookVerifier = func(v listener.WebhookVerifier) listener.WebhookVerifier {
			if innerWebhook != nil {
				v = innerWebhook(v)
			}
			return d.webhook(v)
		}
	}
	cfg.WrapVerifier = func(v listener.Verifier) listener.Verifier {
		if innerVerifier != nil {
			v = innerVerifier(v)
		}
		if d.verifier != nil {
			v = d.verifier(v)
		}
		e.verifier = v
		return v
	}
	cfg.WrapStore = func(st store.Store) store.Store {
		if innerStore != nil {
			st = innerStore(st)
		}
		if d.store != nil {
			st = d.store(e, st)
		}
		e.store = st
		return st
	}
	if d.handler != nil {
		cfg.WrapHandler = func(h http.Handler) http.Handler {
			h = d.handler(e, h)
			if innerHandler != nil {
				h = innerHandler(h)
			}
			return h
		}
	}
	if d.rules != nil {
		cfg.WrapRules = func(r listener.Rules) listener.Rules {
			r = d.rules(e, r)
			if innerRules != nil {
				r = innerRules(r)
			}
			return r
		}
	}
	if d.config != nil {
		d.config(&cfg)
	}
	cfg.Mutant = ""
	return cfg, nil
}

// env is what a decoration may need of the listener it decorates, filled
// in as the listener is built (before it serves).
type env struct {
	cfg      listener.Config // with its defaults
	verifier listener.Verifier
	store    store.Store
}

// verifiers are the verification bugs, each a decoration of the
// listener's verifier.
var verifiers = map[mutants.Name]func(listener.Verifier) listener.Verifier{
	mutants.ReencodeUTF8: rewriting(eachField(func(f *form.Field) { f.Value = strings.ToValidUTF8(f.Value, "\uFFFD") })),
	mutants.DropEmptyFields: rewriting(rewrite(func(f form.Form) form.Form {
		out := f[:0]
		for _, fd := range f {
			if fd.Value != "" {
				out = append(out, fd)
			}
		}
		return out
	})),
	mutants.TruncateAdaptiveKeys: rewriting(eachField(func(f *form.Field) { f.Name = adaptiveKey.ReplaceAllString(f.Name, "$1") })),
	mutants.PlusSpace:            rewriting(plusLiteral),
	mutants.CRLFToLF:             rewriting(eachField(func(f *form.Field) { f.Value = strings.ReplaceAll(f.Value, "\r\n", "\n") })),
	mutants.NoPostback:           func(listener.Verifier) listener.Verifier { return trusting{} },
	mutants.WrongVerifyURL: func(v listener.Verifier) listener.Verifier {
		return reading(v, func(p listener.Postback) listener.Postback { p.URL = "http://127.0.0.1:9/cgi-bin/webscr"; return p }, listener.Judge)
	},
	mutants.IgnoreStatus: func(v listener.Verifier) listener.Verifier {
		return reading(v, nil, func(_ int, answer []byte) (string, error) { return listener.Judge(200, answer) })
	},
	mutants.ContainsVerified: func(v listener.Verifier) listener.Verifier {
		return reading(v, nil, func(status int, answer []byte) (string, error) {
			if status == http.StatusOK && bytes.Contains(answer, []byte("VERIFIED")) {
				return "VERIFIED", nil
			}
			return listener.Judge(status, answer)
		})
	},
	mutants.RetryInvalid: func(v listener.Verifier) listener.Verifier { return invalidAsError{v} },
}

// decoration is how a mutant decorates the reference listener, at one
// seam or more.
type decoration struct {
	config   func(*listener.Config)
	verifier func(listener.Verifier) listener.Verifier
	webhook  func(listener.WebhookVerifier) listener.WebhookVerifier
	handler  func(*env, http.Handler) http.Handler
	rules    func(*env, listener.Rules) listener.Rules
	store    func(*env, store.Store) store.Store
}

// decorations are the mutants built at a seam.
var decorations = func() map[mutants.Name]decoration {
	out := map[mutants.Name]decoration{
		mutants.Ack204: {handler: func(_ *env, next http.Handler) http.Handler {
			return onPayPal(next, func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(&noContent{ResponseWriter: w}, r) })
		}},
		mutants.AckAfterVerify: {
			verifier: func(v listener.Verifier) listener.Verifier {
				return reading(v, func(p listener.Postback) listener.Postback { p.Timeout = 0; return p }, listener.Judge)
			},
			handler: verifyBeforeAck,
		},
		// The 200 went out before verifying, and a verification that
		// fails is never tried again.
		mutants.Implicit200: {config: func(c *listener.Config) { c.Verify.Attempts = 1 }},
		// The allowlist misconfigured: any address is PayDo's.
		mutants.PaydoNoAllowlist: {config: func(c *listener.Config) { c.PayDo.AllowedSources = []string{"0.0.0.0/0", "::/0"} }},
		mutants.PaydoTrustXFF: {handler: func(_ *env, next http.Handler) http.Handler {
			return forwardedAsPeer(next)
		}},
		mutants.Ignored500:           {handler: refuseIgnored},
		mutants.NoDuplicateCheck:     {store: func(_ *env, st store.Store) store.Store { return nonUnique{st} }},
		mutants.RacyDuplicates:       {store: newRacy},
		mutants.WebhookRejectUnknown: {handler: rejectUnknownWebhooks},
	}
	for n, v := range webhookVerifiers {
		out[n] = decoration{webhook: v}
	}
	for n, r := range webhookRules {
		out[n] = decoration{rules: r}
	}
	for n, v := range verifiers {
		out[n] = decoration{verifier: v}
	}
	for n, r := range rules {
		out[n] = decoration{rules: r}
	}
	return out
}()

// Verifiers lists the mutants built by decorating the listener's
// verifier alone, with their decoration (for specs).
func Verifiers() map[mutants.Name]func(listener.Verifier) listener.Verifier {
	out := make(map[mutants.Name]func(listener.Verifier) listener.Verifier, len(verifiers))
	for n, d := range verifiers {
		out[n] = d
	}
	return out
}

// Decorated lists every mutant built at a seam.
func Decorated() []mutants.Name {
	out := make([]mutants.Name, 0, len(decorations))
	for n := range decorations {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// onPayPal serves PayPal's endpoint with h, the rest with next.
func onPayPal(next http.Handler, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != listener.PayPalPath {
			next.ServeHTTP(w, r)
			return
		}
		h(w, r)
	})
}

// noContent answers 204 No Content where the listener answers 200: PayPal
// takes only 200 as an ack.
type noContent struct {
	http.ResponseWriter
	wrote bool
}

func (n *noContent) WriteHeader(code int) {
	if code == http.StatusOK {
		code = http.StatusNoContent
	}
	n.wrote = true
	n.ResponseWriter.WriteHeader(code)
}

func (n *noContent) Write(b []byte) (int, error) {
	if !n.wrote {
		n.WriteHeader(http.StatusOK)
	}
	return n.ResponseWriter.Write(b)
}

// forwardedAsPeer is the "real IP" middleware that believes any peer:
// a request carrying X-Forwarded-For comes, for the listener, from its
// last entry.
func forwardedAsPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1])); err == nil {
			r = r.Clone(r.Context())
			r.RemoteAddr = netip.AddrPortFrom(a, 0).String()
			r.Header.Del("X-Forwarded-For")
		}
		next.ServeHTTP(w, r)
	})
}

// verifyBeforeAck posts a well-formed PayPal message back before the
// listener stores and acks it, waiting as long as the verifier takes.
func verifyBeforeAck(e *env, next http.Handler) http.Handler {
	return onPayPal(next, func(w http.ResponseWriter, r *http.Request) {
		if body, ok := peekIPN(r); ok {
			_, _ = e.verifier.Verify(context.WithoutCancel(r.Context()), body)
		}
		next.ServeHTTP(w, r)
	})
}

// peekIPN reads a POSTed PayPal message and puts it back for the listener,
// which reads it again and answers what is wrong with it itself: ok when
// it is one the listener would accept (well-formed, not empty, not too
// large).
func peekIPN(r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, listener.MaxBody+1))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if _, perr := form.Parse(body); err != nil || perr != nil || len(body) == 0 || len(body) > listener.MaxBody {
		return nil, false
	}
	return body, true
}

// rewriter posts back a rewritten body.
type rewriter struct {
	inner   listener.Verifier
	rewrite func([]byte) []byte
}

func (r rewriter) Verify(ctx context.Context, raw []byte) (string, error) {
	return r.inner.Verify(ctx, r.rewrite(raw))
}

func rewriting(rewrite func([]byte) []byte) func(listener.Verifier) listener.Verifier {
	return func(v listener.Verifier) listener.Verifier { return rewriter{v, rewrite} }
}

// trusting never posts back.
type trusting struct{}

func (trusting) Verify(context.Context, []byte) (string, error) { return "VERIFIED", nil }

// invalidAsError takes INVALID for a verifier error, so the listener asks
// again until its retries run out.
type invalidAsError struct{ inner listener.Verifier }

func (v invalidAsError) Verify(ctx context.Context, raw []byte) (string, error) {
	verdict, err := v.inner.Verify(ctx, raw)
	if err == nil && verdict == "INVALID" {
		return "", fmt.Errorf("%w: INVALID taken for an error", listener.ErrVerifier)
	}
	return verdict, err
}

// reader posts back as the listener's Postback does (changed by post, if
// set) and reads the answer its own way.
type reader struct {
	postback listener.Postback
	judge    func(status int, answer []byte) (string, error)
}

func (r reader) Verify(ctx context.Context, raw []byte) (string, error) {
	status, answer, err := r.postback.Exchange(ctx, raw)
	if err != nil {
		return "", err
	}
	return r.judge(status, answer)
}

// reading decorates v, the listener's Postback, to read the verifier's
// answers with judge. A verifier that is no Postback (decorated already)
// cannot be read that way: every verification then fails, saying why.
func reading(v listener.Verifier, post func(listener.Postback) listener.Postback, judge func(int, []byte) (string, error)) listener.Verifier {
	p, ok := v.(listener.Postback)
	if !ok {
		return unreadable{v}
	}
	if post != nil {
		p = post(p)
	}
	return reader{p, judge}
}

// unreadable is a decoration that needed the listener's own Postback.
type unreadable struct{ got listener.Verifier }

func (u unreadable) Verify(context.Context, []byte) (string, error) {
	return "", fmt.Errorf("this mutant reads the verifier's answers itself: it decorates the listener's Postback, not a %T", u.got)
}

var adaptiveKey = regexp.MustCompile(`^(transaction\[\d+\])\..+$`)

// rewrite applies change to the parsed fields (a body that does not parse
// goes as it came).
func rewrite(change func(form.Form) form.Form) func([]byte) []byte {
	return func(body []byte) []byte {
		f, err := form.Parse(body)
		if err != nil {
			return body
		}
		return change(f).Encode()
	}
}

func eachField(change func(*form.Field)) func([]byte) []byte {
	return rewrite(func(f form.Form) form.Form {
		for i := range f {
			change(&f[i])
		}
		return f
	})
}

// plusLiteral decodes with a URL-path decoder, which keeps '+' literal;
// re-encoding then turns every space PayPal sent as '+' into %2B.
func plusLiteral(body []byte) []byte {
	var out []string
	for _, t := range form.Tokens(body) {
		v, err := url.PathUnescape(t.Value)
		if err != nil {
			return body
		}
		out = append(out, t.Name+"="+form.Escape(v))
	}
	return []byte(strings.Join(out, "&"))
}
