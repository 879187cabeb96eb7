package suggest_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
	"github.com/ipnlab/ipnlab/internal/suggest"
)

func TestSuggest(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "suggest")
}

var _ = Describe("Suggesting a name", func() {
	kinds := []string{"cart", "web_accept", "refund", "reversal", "send_money"}
	DescribeTable("finds the slip, and nothing for a word far from every name",
		func(word, want string) {
			got, ok := suggest.Closest(word, kinds)
			Expect(ok).To(Equal(want != ""))
			if want != "" {
				Expect(got).To(Equal(want))
			}
		},
		Entry("a letter missing", "web_acept", "web_accept"),
		Entry("two letters swapped", "refnud", "refund"),
		Entry("case and punctuation", "Web-Accept", "web_accept"),
		Entry("a short word, one edit", "crt", "cart"),
		Entry("a short word, two edits: too far", "cxx", ""),
		Entry("nothing like it", "subscription", ""),
		Entry("empty", "", ""),
	)

	It("says it as a hint, and says nothing for an exact name", func() {
		Expect(suggest.Hint("latin9", []string{"ISO-8859-1", "Latin-9", "UTF-8"})).To(Equal(` (did you mean "Latin-9"?)`))
		Expect(suggest.Hint("cart", kinds)).To(BeEmpty())
		Expect(suggest.Hint("zzz", kinds)).To(BeEmpty())
	})
})
