package mutants_test

import (
	"reflect"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener/mutants"
)

// decisions lists the decisions a flaw changes.
func decisions(f mutants.Flaw) []string {
	var out []string
	v := reflect.ValueOf(f)
	for i := range v.NumField() {
		if !v.Field(i).IsZero() {
			out = append(out, v.Type().Field(i).Name)
		}
	}
	return out
}

var _ = Describe("The gallery", func() {
	// A postback with what each rewrite mangles: a space as '+', an empty
	// field, an Adaptive key, a CRLF, windows-1252 bytes.
	const body = "custom=&first_name=J%F6rg&address_street=1+Main+St%0D%0AFlat+2&transaction%5B0%5D.amount=USD+1.00&charset=windows-1252"

	It("gives every mutant a flaw of its own: the decisions it changes, or how it rewrites a postback", func() {
		seen := map[string]mutants.Name{}
		for _, m := range mutants.All() {
			d := decisions(m.Flaw)
			Expect(d).NotTo(BeEmpty(), "%s changes nothing: the listener would be the reference one", m.Name)
			key := strings.Join(d, ",")
			if m.Flaw.RewritePostback != nil {
				out := string(m.Flaw.RewritePostback([]byte(body)))
				Expect(out).NotTo(Equal(body), "%s's rewrite leaves the sample as it was", m.Name)
				key += "|" + out
			}
			Expect(seen).NotTo(HaveKey(key), "%s and %s are the same flaw", m.Name, seen[key])
			seen[key] = m.Name
			got, ok := mutants.Lookup(string(m.Name))
			Expect(ok).To(BeTrue())
			Expect(decisions(got.Flaw)).To(Equal(d))
		}
		_, ok := mutants.Lookup("no-such-mutant")
		Expect(ok).To(BeFalse())
	})
})
