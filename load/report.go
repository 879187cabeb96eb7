package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run did and what the listener made of it.
type Report struct {
	Provider    string  `json:"provider"`
	Target      string  `json:"target"`
	Rate        float64 `json:"rate,omitempty"`        // asked for, messages/s
	Concurrency int     `json:"concurrency,omitempty"` // asked for

	// Sent counts every message created, the backlog's included.
	Sent int `json:"sent"`
	// Steady is the sending phase: its messages, wall time and rate.
	Steady struct {
		Messages     int     `json:"messages"`
		Seconds      float64 `json:"seconds"`
		AchievedRate float64 `json:"achieved_rate"`
		// HeldBack counts the times rate-paced sending waited for a
		// message in flight to finish (MaxInFlight were): the rate asked
		// for was not kept.
		HeldBack int `json:"held_back"`
	} `json:"steady"`
	Backlog *Flush `json:"backlog,omitempty"`

	// Attempts counts deliveries to the listener, first tries and retries;
	// Answers splits them by HTTP status or by what went wrong ("timeout",
	// "refused", "reset", "error"); ErrorSamples quotes one of each.
	Attempts     int               `json:"attempts"`
	Answers      map[string]int    `json:"answers"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// OutageAttempts failed during the simulated outage and never reached
	// the listener.
	OutageAttempts int         `json:"outage_attempts,omitempty"`
	AckLatency     Percentiles `json:"ack_latency"` // of answered attempts

	Acked      int `json:"acked"`       // messages acked (a 200, or another 2xx in paypal mode)
	AckedFirst int `json:"acked_first"` // by the first attempt that reached the listener
	Failed     int `json:"failed"`      // every retry of the schedule used up
	Waiting    int `json:"waiting"`     // a retry still scheduled (retries not followed)
	Retries    int `json:"retries"`     // scheduled retries made

	Verification Verification `json:"verification"`

	WallSeconds float64 `json:"wall_seconds"`
	// RSS is the process's resident memory when the load began and when
	// it was reported (Linux; 0 elsewhere): a long load's must stay flat.
	RSS struct {
		StartBytes int64 `json:"start_bytes"`
		EndBytes   int64 `json:"end_bytes"`
	} `json:"rss"`
	SimulatedSeconds float64 `json:"simulated_seconds"` // delivery clock time stepped through
}

// Flush is the backlog's release.
type Flush struct {
	Messages int `json:"messages"`
	// ReleasedAfter is the clock time from queueing to release: the
	// schedule's first retry.
	ReleasedAfter time.Duration  `json:"-"`
	Wall          time.Duration  `json:"-"` // until every released attempt ended
	Acked         int            `json:"acked"`
	Answers       map[string]int `json:"answers"`
}

// MarshalJSON writes the durations in seconds.
func (f Flush) MarshalJSON() ([]byte, error) {
	type plain Flush
	return json.Marshal(struct {
		plain
		ReleasedAfter float64 `json:"released_after_seconds"`
		Wall          float64 `json:"wall_seconds"`
		Rate          float64 `json:"answered_per_second"`
	}{plain(f), f.ReleasedAfter.Seconds(), f.Wall.Seconds(), f.Rate()})
}

// Rate is the released messages answered per wall second.
func (f Flush) Rate() float64 {
	if f.Wall <= 0 {
		return 0
	}
	return float64(f.Messages) / f.Wall.Seconds()
}

// Verification is what the listener did to check its messages: PayPal
// postbacks the verifier answered, or PayDo status lookups.
type Verification struct {
	// Per message, by its first postback (PayPal).
	Verified int `json:"verified"`
	Invalid  int `json:"invalid"`
	// LookedUp counts messages whose transaction was looked up (PayDo).
	LookedUp int `json:"looked_up,omitempty"`
	// None counts acked messages never posted back (or looked up).
	None int `json:"none"`
	// Repeated counts messages posted back more than once.
	Repeated int `json:"repeated"`
	// Postbacks and Lookups count every request; Unmatched are postbacks
	// matching no message sent, Unknown lookups of no known transaction.
	Postbacks int `json:"postbacks"`
	Unmatched int `json:"unmatched"`
	Lookups   int `json:"lookups,omitempty"`
	Unknown   int `json:"unknown,omitempty"`
	// InvalidRules counts INVALID postbacks by the rule that failed them.
	InvalidRules map[string]int `json:"invalid_rules,omitempty"`
	// Latency is from a message's creation to its first VERIFIED postback
	// (or first lookup).
	Latency Percentiles `json:"latency"`
}

// Percentiles summarizes wall-time latencies.
type Percentiles struct {
	Count int
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// MarshalJSON writes milliseconds.
func (p Percentiles) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }
	return json.Marshal(map[string]any{
		"count": p.Count, "p50_ms": ms(p.P50), "p90_ms": ms(p.P90), "p99_ms": ms(p.P99),
		"p99.9_ms": ms(p.P999), "max_ms": ms(p.Max),
	})
}

// PercentilesOf summarizes samples (it sorts them in place). A percentile
// is the smallest sample at or above that share of all samples.
func PercentilesOf(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		return samples[max(0, min(i, len(samples)-1))]
	}
	return Percentiles{
		Count: len(samples), P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999),
		Max: samples[len(samples)-1],
	}
}

func (p Percentiles) String() string {
	if p.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%s)",
		short(p.P50), short(p.P90), short(p.P99), short(p.P999), short(p.Max), group(p.Count))
}

func (a *accounts) report(cfg Config, clockNow time.Time) Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := Report{
		Provider: cfg.Provider, Target: cfg.Target, Rate: cfg.Rate, Concurrency: cfg.Concurrency,
		Sent: a.sent, Answers: map[string]int{}, OutageAttempts: a.outage,
		AckLatency:       a.latency.percentiles(),
		WallSeconds:      time.Since(a.realStart).Seconds(),
		SimulatedSeconds: clockNow.Sub(a.clockStart).Seconds(),
	}
	r.RSS.StartBytes, r.RSS.EndBytes = a.rssStart, residentBytes()
	r.Steady.Messages, r.Steady.Seconds, r.Steady.HeldBack = a.steadyN, a.steadyWall.Seconds(), a.held
	if a.steadyWall > 0 {
		r.Steady.AchievedRate = float64(a.steadyN) / a.steadyWall.Seconds()
	}
	if a.flush != nil {
		f := *a.flush
		r.Backlog = &f
	}
	for class, n := range a.answers {
		r.Answers[class] = n
		r.Attempts += n
	}
	if len(a.samples) > 0 {
		r.ErrorSamples = map[string]string{}
		for k, v := range a.samples {
			r.ErrorSamples[k] = v
		}
	}
	v := &r.Verification
	v.Postbacks, v.Unmatched, v.Lookups, v.Unknown = a.postbacks, a.unmatched, a.lookups, a.unknown
	if len(a.rules) > 0 {
		v.InvalidRules = map[string]int{}
		for k, n := range a.rules {
			v.InvalidRules[k] = n
		}
	}
	v.Latency = a.verify.percentiles()
	t := a.retired
	for _, rec := range a.msgs {
		t.add(rec)
	}
	r.Acked, r.AckedFirst, r.Waiting, r.Failed = t.acked, t.ackedFirst, t.waiting, t.failed
	v.Verified, v.Invalid, v.LookedUp, v.None, v.Repeated = t.verified, t.invalid, t.lookedUp, t.none, t.repeated
	r.Retries = a.retries
	return r
}

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	mode := fmt.Sprintf("concurrency %d", r.Concurrency)
	if r.Rate > 0 {
		mode = fmt.Sprintf("rate %s/s", strconv.FormatFloat(r.Rate, 'f', -1, 64))
	}
	if r.Steady.Messages == 0 && r.Steady.Seconds == 0 {
		mode = "a backlog only"
	}
	row("load", "%s messages to %s, %s", r.Provider, r.Target, mode)
	if f := r.Backlog; f != nil {
		row("backlog", "%s queued during an outage, released at once after %s (clock): answered in %s (%s/s), %s acked",
			group(f.Messages), f.ReleasedAfter, short(f.Wall), group(int(f.Rate()+0.5)), group(f.Acked))
		row("", "%s", answers(f.Answers))
	}
	if r.Steady.Messages > 0 || r.Steady.Seconds > 0 {
		s := r.Steady
		line := fmt.Sprintf("%s messages in %.1fs: %s/s", group(s.Messages), s.Seconds, group(int(s.AchievedRate+0.5)))
		if r.Rate > 0 {
			line += fmt.Sprintf(" of %s/s asked", strconv.FormatFloat(r.Rate, 'f', -1, 64))
		}
		if s.HeldBack > 0 {
			line += fmt.Sprintf(" (held back %s times: too many messages in flight)", group(s.HeldBack))
		}
		row("sent", "%s", line)
	}
	row("attempts", "%s deliveries to the listener, %s of them scheduled retries", group(r.Attempts), group(r.Retries))
	row("answers", "%s", answers(r.Answers))
	for _, class := range sortedKeys(r.ErrorSamples) {
		row("", "%s: %s", class, r.ErrorSamples[class])
	}
	if r.OutageAttempts > 0 {
		row("", "%s more failed during the simulated outage (never reached the listener)", group(r.OutageAttempts))
	}
	row("ack latency", "%s", r.AckLatency)
	row("acked", "%s of %s messages (%s), %s on the first attempt", group(r.Acked), group(r.Sent), percent(r.Acked, r.Sent), group(r.AckedFirst))
	if r.Failed > 0 || r.Waiting > 0 {
		row("not acked", "%s failed every retry, %s still waiting for a retry", group(r.Failed), group(r.Waiting))
	}
	v := r.Verification
	switch r.Provider {
	case PayPalREST:
		row("verification", "the listener's own: REST webhooks are signed, and checked without asking the provider (or through its verify API, not counted here)")
	case PayDo:
		row("lookups", "%s messages looked up, %s acked and never looked up; %s lookups, %s of no known transaction",
			group(v.LookedUp), group(v.None), group(v.Lookups), group(v.Unknown))
		row("lookup latency", "created to first lookup: %s", v.Latency)
	default:
		row("postbacks", "VERIFIED %s, INVALID %s, acked and never posted back %s (first postback of each message)",
			group(v.Verified), group(v.Invalid), group(v.None))
		row("", "%s postbacks, %s messages posted back more than once, %s matching no message",
			group(v.Postbacks), group(v.Repeated), group(v.Unmatched))
		if len(v.InvalidRules) > 0 {
			parts := []string{}
			for _, rule := range sortedKeys(v.InvalidRules) {
				parts = append(parts, fmt.Sprintf("%s %s", rule, group(v.InvalidRules[rule])))
			}
			row("", "INVALID by rule: %s", strings.Join(parts, ", "))
		}
		row("verify latency", "created to VERIFIED: %s", v.Latency)
	}
	row("time", "%.1fs wall, %s of provider time stepped through", r.WallSeconds, time.Duration(r.SimulatedSeconds*float64(time.Second)))
	if r.RSS.EndBytes > 0 {
		row("memory", "%.0f MB resident at the start, %.0f MB at the end", float64(r.RSS.StartBytes)/1e6, float64(r.RSS.EndBytes)/1e6)
	}
	return tw.Flush()
}

// answers lists status counts, most frequent first, with shares.
func answers(m map[string]int) string {
	total := 0
	for _, n := range m {
		total += n
	}
	if total == 0 {
		return "none"
	}
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %s (%s)", k, group(m[k]), percent(m[k], total))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func percent(n, of int) string {
	if of == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64) + "%"
}

// group writes n with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// short rounds a latency for reading.
func short(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
