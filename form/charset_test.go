package form_test

import (
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/form"
)

var _ = Describe("Charset", func() {
	DescribeTable("passes ASCII text through only where the charset's ASCII bytes stand for themselves",
		func(label, text, wantWire string) {
			cs, err := form.LookupCharset(label)
			Expect(err).NotTo(HaveOccurred())
			raw, err := cs.Encode(text)
			Expect(err).NotTo(HaveOccurred())
			Expect(raw).To(Equal(wantWire))
			Expect(cs.Decode(raw)).To(Equal(text))
		},
		Entry("windows-1252", "windows-1252", "Ann Lee", "Ann Lee"),
		Entry("KOI8_R", "KOI8_R", "order 42", "order 42"),
		Entry("UTF-16LE: two bytes each", "UTF-16LE", "Ann", "A\x00n\x00n\x00"),
		Entry("UTF-16BE", "UTF-16BE", "Ann", "\x00A\x00n\x00n"),
	)

	DescribeTable("round-trips text through the wire in each charset PayPal uses",
		func(label, text, wantWire string) {
			cs, err := form.LookupCharset(label)
			Expect(err).NotTo(HaveOccurred())
			text0 := form.Form{{Name: "charset", Value: label}, {Name: "first_name", Value: text}, {Name: "custom", Value: ""}}
			raw, err := form.EncodeText(text0, cs)
			Expect(err).NotTo(HaveOccurred())
			body := raw.Encode()
			Expect(string(body)).To(ContainSubstring("first_name=" + wantWire + "&"))

			parsed, err := form.Parse(body)
			Expect(err).NotTo(HaveOccurred())
			got, err := parsed.Charset()
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Name()).To(Equal(cs.Name()))
			Expect(parsed.Text(got)).To(Equal(text0))
			Expect(got.Valid(parsed.Value("first_name"))).To(BeTrue())
		},
		Entry("windows-1252", "windows-1252", "Jörg", "J%F6rg"),
		Entry("UTF-8", "UTF-8", "Dún", "D%C3%BAn"),
		Entry("windows-1255 (Hebrew)", "windows-1255", "שלום", "%F9%EC%E5%ED"),
		Entry("KOI8_R (Russian)", "KOI8_R", "Иван", "%E9%D7%C1%CE"),
		Entry("windows-1251 (Russian)", "windows-1251", "Иван", "%C8%E2%E0%ED"),
		Entry("ISO-8859-1 stays Latin-1", "ISO-8859-1", "Zoë", "Zo%EB"),
		Entry("Shift_JIS", "Shift_JIS", "山田", "%8ER%93c"),
		Entry("Big5", "Big5", "王", "%A4%FD"),
	)

	It("defaults to windows-1252 when the message names no charset", func() {
		cs, err := form.Form{{Name: "first_name", Value: "J\xf6rg"}}.Charset()
		Expect(err).NotTo(HaveOccurred())
		Expect(cs.Name()).To(Equal("windows-1252"))
		Expect(cs.Decode("J\xf6rg")).To(Equal("Jörg"))
	})

	It("names the character a charset cannot hold", func() {
		_, err := form.MustCharset("windows-1252").Encode("Jörg ש")
		Expect(errors.Is(err, form.ErrUnrepresentable)).To(BeTrue())
		Expect(err.Error()).To(ContainSubstring(`'ש'`))
	})

	It("rejects unknown labels", func() {
		_, err := form.LookupCharset("klingon-8")
		Expect(errors.Is(err, form.ErrUnknownCharset)).To(BeTrue())
		Expect(err.Error()).To(ContainSubstring(`"klingon-8"`))
	})

	It("shows windows-1252 bytes read as UTF-8 as U+FFFD, and says they are invalid", func() {
		utf8 := form.MustCharset("UTF-8")
		Expect(utf8.Decode("J\xf6rg")).To(Equal("J\uFFFDrg"))
		Expect(utf8.Valid("J\xf6rg")).To(BeFalse())
	})
})
