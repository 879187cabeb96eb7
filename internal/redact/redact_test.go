package redact_test

import (
	"errors"
	"fmt"
	"net/url"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/redact"
)

var _ = Describe("redacting a DSN", func() {
	DescribeTable("hides the password in every form, and nothing else",
		func(in, want string) {
			Expect(redact.DSN(in)).To(Equal(want))
			Expect(redact.DSN(in)).NotTo(ContainSubstring("s3cret"))
		},
		Entry("user info", "postgres://shop:s3cret@127.0.0.1:5432/shop", "postgres://shop:[redacted]@127.0.0.1:5432/shop"),
		Entry("user info behind sql:", "sql:mysql://shop:s3cret@127.0.0.1:3306/shop", "sql:mysql://shop:[redacted]@127.0.0.1:3306/shop"),
		Entry("a % and a space, which do not parse", "postgres://shop:s3cret%zz x@h/db", "postgres://shop:[redacted]@h/db"),
		Entry("a query parameter", "postgres://127.0.0.1/shop?user=shop&password=s3cret&sslmode=disable", "postgres://127.0.0.1/shop?user=shop&password=[redacted]&sslmode=disable"),
		Entry("the first query parameter", "postgres://h/db?PASSWORD=s3cret", "postgres://h/db?PASSWORD=[redacted]"),
		Entry("sslpassword", "postgres://h/db?sslpassword=s3cret", "postgres://h/db?sslpassword=[redacted]"),
		Entry("keyword/value text", "host=h user=shop password=s3cret dbname=shop", "host=h user=shop password=[redacted] dbname=shop"),
		Entry("a quoted value with a space", `host=h password='s3cret \' x' dbname=shop`, "host=h password=[redacted] dbname=shop"),
		Entry("a DSN quoted in a message", `probe sql:postgres://u:s3cret@h/db: parse "postgres://u:s3cret@h/db": invalid port`, `probe sql:postgres://u:[redacted]@h/db: parse "postgres://u:[redacted]@h/db": invalid port`),
		Entry("no password", "postgres://shop@127.0.0.1:5432/shop?search_path=a", "postgres://shop@127.0.0.1:5432/shop?search_path=a"),
		Entry("a port, then an address elsewhere", "postgres://h:5432/db (ask ops@example.com)", "postgres://h:5432/db (ask ops@example.com)"),
		Entry("a SQLite path", "sqlite:/var/lib/shop.db", "sqlite:/var/lib/shop.db"),
	)

	It("redacts an error's message and keeps its chain", func() {
		//lint:ignore SA1007 the point: a URL that does not parse, quoted in its error
		_, perr := url.Parse("postgres://u:s3cret%zz@h/db")
		Expect(perr).To(HaveOccurred())
		Expect(perr.Error()).To(ContainSubstring("s3cret"), "the standard library quotes the URL")
		sentinel := errors.New("sentinel")
		err := redact.Error(fmt.Errorf("open %w: %w", sentinel, perr))
		Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		Expect(err).To(MatchError(sentinel))
		Expect(redact.Error(nil)).To(BeNil())
	})
})
