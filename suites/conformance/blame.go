package conformance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/scenarios"
)

// owner names the check whose requirement a postback difference breaks,
// when one check is about exactly that ("" when none is): a listener that
// turns spaces into %2B fails PP-VERIFY-PLUS, and every other check whose
// messages it could not verify for that reason alone is blocked by it,
// not failed a second time for the same bug.
func owner(f paypal.Finding) string {
	switch f.Rule {
	case paypal.RulePlusSpace:
		return "PP-VERIFY-PLUS"
	case paypal.RuleCRLF:
		return "PP-VERIFY-CRLF"
	case paypal.RuleEndpoint:
		return "PP-VERIFY-ENDPOINT"
	case paypal.RuleFieldRenamed:
		if strings.HasPrefix(f.Field, "transaction[") {
			return "PP-VERIFY-ADAPTIVE"
		}
	case paypal.RuleFieldDropped:
		if f.Expected == "" {
			return "PP-VERIFY-EMPTY-FIELDS"
		}
	case paypal.RuleCharset:
		// The detail names the message's charset first.
		for _, cs := range []struct{ label, id string }{
			{"windows-1252", "PP-VERIFY-WINDOWS-1252"}, {"windows-1255", "PP-VERIFY-WINDOWS-1255"}, {"UTF-8", "PP-VERIFY-UTF-8"},
		} {
			if strings.Contains(f.Detail, "from "+cs.label+" ") || strings.Contains(f.Detail, ": "+cs.label+" bytes") {
				return cs.id
			}
		}
	}
	return ""
}

// postbackSent is the check a listener that never posts back fails; the
// checks that needed a postback are blocked by it.
const postbackSent = "PP-POSTBACK-SENT"

// blockers returns the checks whose bug kept a failed check from being
// judged: PP-POSTBACK-SENT when none of its messages was posted back,
// else the checks that its postbacks' differences all belong to (when
// none belongs to the check itself). nil: the failure stands.
func blockers(id string, res scenarios.Result) []string {
	if res.NeverPostedBack {
		if id == postbackSent {
			return nil
		}
		return []string{postbackSent}
	}
	findings := res.Findings
	if len(findings) == 0 {
		return nil
	}
	var by []string
	for _, f := range findings {
		o := owner(f)
		if o == "" || o == id {
			return nil
		}
		if !slices.Contains(by, o) {
			by = append(by, o)
		}
	}
	slices.Sort(by)
	return by
}

// unblockWherePostedBack judges again the checks blocked by
// PP-POSTBACK-SENT when the listener posted other messages of the run
// back (postedBack): it does post back, so one that posted none of a
// check's messages back turned them away before verifying them (a form
// that refuses Adaptive Payments keys, say), and the check's failure
// stands.
func unblockWherePostedBack(results []Result, postedBack bool) {
	if !postedBack {
		return
	}
	for i, r := range results {
		if r.Status != scenarios.Blocked || !slices.Equal(r.BlockedBy, []string{postbackSent}) {
			continue
		}
		r.Status, r.BlockedBy = scenarios.Failed, nil
		r.Message = fmt.Sprintf("%s (the listener posted none of this check's messages back, though it posts back others of the run: it turned these away before verifying them)", r.failure)
		results[i] = r
	}
}

// blockBySharedFindings blocks a failed check whose INVALID postbacks
// broke nothing but what failed PP-VERIFY-* checks of the same run broke
// too (the same rule on the same field), when no rule of them named its
// owner: a listener that mangles accented names in a way the verifier
// cannot put a charset to fails PP-VERIFY-WINDOWS-1252, and
// PP-CHARSET-NAME, whose payer was never credited for that reason
// alone, is blocked by it rather than failed a second time.
func blockBySharedFindings(results []Result) {
	key := func(f paypal.Finding) string { return string(f.Rule) + "|" + f.Field }
	owners := map[string][]string{}
	for _, r := range results {
		if r.Status == scenarios.Failed && strings.HasPrefix(r.ID, "PP-VERIFY-") {
			for _, f := range r.findings {
				if k := key(f); !slices.Contains(owners[k], r.ID) {
					owners[k] = append(owners[k], r.ID)
				}
			}
		}
	}
	for i, r := range results {
		if r.Status != scenarios.Failed || strings.HasPrefix(r.ID, "PP-VERIFY-") || len(r.findings) == 0 {
			continue
		}
		var by []string
		for _, f := range r.findings {
			o := owners[key(f)]
			if len(o) == 0 {
				by = nil
				break
			}
			for _, id := range o {
				if !slices.Contains(by, id) {
					by = append(by, id)
				}
			}
		}
		if by == nil {
			continue
		}
		slices.Sort(by)
		r.Status, r.BlockedBy, r.failure = scenarios.Blocked, by, r.Message
		r.Message = blockedMessage(by, scenarios.Result{Findings: r.findings, Message: r.Message})
		results[i] = r
	}
}

// blockedMessage says why a check was not judged.
func blockedMessage(by []string, res scenarios.Result) string {
	if res.NeverPostedBack {
		return fmt.Sprintf("not judged: the listener posted none of its messages back (what %s tests); fix that first (it would have failed with: %s)", postbackSent, res.Message)
	}
	findings, failure := res.Findings, res.Message
	var rules []string
	for _, f := range findings {
		if r := string(f.Rule); !slices.Contains(rules, r) {
			rules = append(rules, r)
		}
	}
	return fmt.Sprintf("not judged: every INVALID postback of its messages broke what %s tests (%s); fix that first (it would have failed with: %s)",
		strings.Join(by, " and "), strings.Join(rules, ", "), failure)
}
