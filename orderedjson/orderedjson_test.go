package orderedjson_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/orderedjson"
)

const transfer = `{"transaction":{"amount":25,"status":3,"currency":"EUR","identifierTxFrom":"6f1c"}}`

var _ = Describe("Object", func() {
	It("keeps key order and numbers as written", func() {
		o, err := orderedjson.Parse([]byte(transfer))
		Expect(err).NotTo(HaveOccurred())
		out, err := json.Marshal(o)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).To(Equal(transfer))
		v, ok := o.Get("transaction.amount")
		Expect(ok).To(BeTrue())
		Expect(v).To(Equal(json.Number("25")))
		Expect(o.Paths()).To(Equal([]string{"transaction.amount", "transaction.status", "transaction.currency", "transaction.identifierTxFrom"}))
	})

	It("sets existing paths in place and names the choices for unknown ones", func() {
		o, _ := orderedjson.Parse([]byte(transfer))
		o2, err := o.Set("transaction.status", json.Number("2"))
		Expect(err).NotTo(HaveOccurred())
		out, _ := json.Marshal(o2)
		Expect(string(out)).To(Equal(strings.Replace(transfer, `"status":3`, `"status":2`, 1)))
		orig, _ := json.Marshal(o)
		Expect(string(orig)).To(Equal(transfer), "Set does not change the original")

		_, err = o.Set("transaction.state", json.Number("2"))
		Expect(err).To(MatchError(orderedjson.ErrPath))
		Expect(err.Error()).To(ContainSubstring(`"transaction.state": no such field; transaction has amount, status, currency, identifierTxFrom`))
		_, err = o.Set("transaction.amount.value", "1")
		Expect(err).To(MatchError(ContainSubstring(`"transaction.amount" is not an object`)))
	})

	It("appends new keys only under open objects", func() {
		o, _ := orderedjson.Parse([]byte(`{"invoice":{"id":"1","metadata":{}}}`))
		o, err := o.Set("invoice.metadata.customer", "c-42", "invoice.metadata")
		Expect(err).NotTo(HaveOccurred())
		out, _ := json.Marshal(o)
		Expect(string(out)).To(Equal(`{"invoice":{"id":"1","metadata":{"customer":"c-42"}}}`))
	})

	DescribeTable("rejects bad documents precisely",
		func(doc, msg string) {
			_, err := orderedjson.Parse([]byte(doc))
			Expect(err).To(MatchError(ContainSubstring(msg)))
		},
		Entry("not an object", `[1,2]`, "want a JSON object, got an array"),
		Entry("truncated", `{"a":`, "unexpected end of JSON"),
		Entry("duplicate key", `{"a":1,"a":2}`, `duplicate key "a"`),
		Entry("trailing data", `{} {}`, "data after the JSON object"),
		Entry("too deep", strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40), "nested deeper than 32"),
		Entry("syntax", `{"a" 1}`, "invalid JSON at byte"),
	)
})

// FuzzParse: any input parses or fails with an error; what parses
// marshals to JSON that parses back to the same document.
func FuzzParse(f *testing.F) {
	for _, s := range []string{transfer, `{"a":[1,{"b":null}],"c":true}`, `{"a":1,"a":2}`, `{`, `[]`, `{"x":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := orderedjson.Parse(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("marshal %q: %v", data, err)
		}
		back, err := orderedjson.Parse(out)
		if err != nil {
			t.Fatalf("re-parse %q: %v", out, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(out) {
			t.Fatalf("not stable: %q then %q", out, again)
		}
	})
}

var _ = Describe("Parsing many keys", func() {
	It("finds a duplicate however far apart, and reads 40,000 distinct keys in order", func() {
		keys := make([]string, 40_000)
		for i := range keys {
			keys[i] = fmt.Sprintf(`"k%d": %d`, i, i)
		}
		obj, err := orderedjson.Parse([]byte("{" + strings.Join(keys, ",") + "}"))
		Expect(err).NotTo(HaveOccurred())
		Expect(obj).To(HaveLen(40_000))
		Expect(obj[39_999].Key).To(Equal("k39999"))
		for _, at := range []int{1, 15, 16, 17, 39_999} {
			dup := append(append([]string{}, keys[:at]...), `"k0": 1`)
			_, err := orderedjson.Parse([]byte("{" + strings.Join(dup, ",") + "}"))
			Expect(err).To(MatchError(`duplicate key "k0"`), "at %d", at)
		}
	})
})
