package form_test

import (
	"errors"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/form"
)

// A real PayPal body (IPN Guide sample): order, empty fields, '+', %3A, %2C, %40.
const guideBody = "mc_gross=19.95&protection_eligibility=Eligible&address_status=confirmed&payer_id=LPLWNMTBWMFAY&tax=0.00&address_street=1+Main+St&payment_date=20%3A12%3A59+Jan+13%2C+2009+PST&payment_status=Completed&charset=windows-1252&address_zip=95131&first_name=Test&mc_fee=0.88&address_country_code=US&address_name=Test+User&notify_version=2.6&custom=&payer_status=verified&address_country=United+States&address_city=San+Jose&quantity=1&verify_sign=AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf&payer_email=gpmac_1231902590_per%40paypal.com&txn_id=61E67681CH3238416&payment_type=instant&last_name=User&address_state=CA&receiver_email=gpmac_1231902686_biz%40paypal.com&payment_fee=0.88&receiver_id=S8XGHLYDW9T3S&txn_type=express_checkout&item_name=&mc_currency=USD&item_number=&residence_country=US&test_ipn=1&handling_amount=0.00&transaction_subject=&payment_gross=19.95&shipping=0.00"

var _ = Describe("Parse and Encode", func() {
	It("round-trips a real PayPal body byte for byte", func() {
		f, err := form.Parse([]byte(guideBody))
		Expect(err).NotTo(HaveOccurred())
		Expect(f).To(HaveLen(39))
		Expect(f[0]).To(Equal(form.Field{Name: "mc_gross", Value: "19.95"}))
		Expect(f.Value("payment_date")).To(Equal("20:12:59 Jan 13, 2009 PST"))
		Expect(f.Value("address_street")).To(Equal("1 Main St"))
		v, ok := f.Get("custom")
		Expect(ok).To(BeTrue())
		Expect(v).To(BeEmpty())
		Expect(string(f.Encode())).To(Equal(guideBody))
	})

	DescribeTable("encodes as PayPal does",
		func(name, value, want string) {
			Expect(string(form.Form{{Name: name, Value: value}}.Encode())).To(Equal(want))
		},
		Entry("space is +", "address_name", "Test User", "address_name=Test+User"),
		Entry(": , @ ! are escaped", "x", "a:b,c@d!", "x=a%3Ab%2Cc%40d%21"),
		Entry("a literal + is %2B", "custom", "a+b", "custom=a%2Bb"),
		Entry("= and & inside a value", "custom", "website_id=13&user_id=21", "custom=website_id%3D13%26user_id%3D21"),
		Entry("URLs keep /", "notify_url", "http://host/path", "notify_url=http%3A//host/path"),
		Entry("Adaptive keys escape brackets", "transaction[0].amount", "USD 129.95", "transaction%5B0%5D.amount=USD+129.95"),
		Entry("raw windows-1252 bytes", "first_name", "J\xf6rg", "first_name=J%F6rg"),
		Entry("raw UTF-8 bytes", "first_name", "D\xc3\xban", "first_name=D%C3%BAn"),
		Entry("CRLF", "address_street", "1 Main St\r\nApt 2", "address_street=1+Main+St%0D%0AApt+2"),
		Entry("verify_sign keeps . and -", "verify_sign", "AtkO.fC-Xb", "verify_sign=AtkO.fC-Xb"),
		Entry("empty value", "custom", "", "custom="),
	)

	It("decodes every equivalent encoding to the same bytes", func() {
		for _, body := range []string{"n=a+b%2Fc", "n=a%20b/c", "n=a%20b%2fc", "n=a b/c"} {
			f, err := form.Parse([]byte(body))
			Expect(err).NotTo(HaveOccurred(), body)
			Expect(f.Value("n")).To(Equal("a b/c"), body)
		}
	})

	It("keeps duplicates and order", func() {
		f, err := form.Parse([]byte("b=1&a=2&b=3"))
		Expect(err).NotTo(HaveOccurred())
		Expect(f).To(Equal(form.Form{{"b", "1"}, {"a", "2"}, {"b", "3"}}))
	})

	It("treats a segment without '=' as an empty value and skips empty segments", func() {
		f, err := form.Parse([]byte("a&&b=1&"))
		Expect(err).NotTo(HaveOccurred())
		Expect(f).To(Equal(form.Form{{"a", ""}, {"b", "1"}}))
	})

	DescribeTable("rejects malformed bodies with the offset",
		func(body string, offset int, msg string) {
			_, err := form.Parse([]byte(body))
			Expect(errors.Is(err, form.ErrMalformed)).To(BeTrue())
			var se *form.SyntaxError
			Expect(errors.As(err, &se)).To(BeTrue())
			Expect(se.Offset).To(Equal(offset))
			Expect(err.Error()).To(ContainSubstring(msg))
		},
		Entry("invalid hex", "a=1&b=%G1", 6, `invalid escape "%G1"`),
		Entry("truncated at end", "a=%4", 2, `truncated escape "%4"`),
		Entry("lone percent", "a=100%", 5, "truncated escape"),
		Entry("escape in a name", "a%zz=1", 1, "invalid escape"),
		Entry("empty name", "=1", 0, "empty name"),
	)

	It("keeps raw tokens with their offsets", func() {
		toks := form.Tokens([]byte("a=1&&b&c=%41"))
		Expect(toks).To(Equal([]form.Token{
			{Offset: 0, Name: "a", Value: "1", HasEqual: true},
			{Offset: 5, Name: "b"},
			{Offset: 7, Name: "c", Value: "%41", HasEqual: true},
		}))
	})

	It("Set keeps position, appends when new; Del removes all", func() {
		f := form.Form{{"a", "1"}, {"b", "2"}, {"a", "3"}}
		f = f.Set("a", "x").Set("c", "4")
		Expect(f).To(Equal(form.Form{{"a", "x"}, {"b", "2"}, {"a", "3"}, {"c", "4"}}))
		Expect(f.Del("a")).To(Equal(form.Form{{"b", "2"}, {"c", "4"}}))
	})

	It("round-trips random forms of arbitrary bytes (property)", func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 2000; i++ {
			f := randomForm(rng)
			back, err := form.Parse(f.Encode())
			Expect(err).NotTo(HaveOccurred())
			Expect(back.Equal(f)).To(BeTrue(), "%q", f)
		}
	})
})

func randomForm(rng *rand.Rand) form.Form {
	n := rng.IntN(8)
	f := make(form.Form, 0, n)
	for j := 0; j < n; j++ {
		f = append(f, form.Field{Name: randomBytes(rng, 1+rng.IntN(12)), Value: randomBytes(rng, rng.IntN(24))})
	}
	return f
}

func randomBytes(rng *rand.Rand, n int) string {
	const interesting = "+ &=%/\r\n:,@!.-_[]"
	b := make([]byte, n)
	for i := range b {
		switch rng.IntN(3) {
		case 0:
			b[i] = interesting[rng.IntN(len(interesting))]
		case 1:
			b[i] = byte('a' + rng.IntN(26))
		default:
			b[i] = byte(rng.IntN(256))
		}
	}
	return string(b)
}
