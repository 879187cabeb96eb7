package yamlstrict_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/yamlstrict"
)

type inner struct {
	Attempts int           `yaml:"attempts"`
	Backoff  time.Duration `yaml:"backoff"`
}

type config struct {
	Listener string `yaml:"listener"`
	Focus    string `yaml:"focus"`
	Verify   inner  `yaml:"verify"`
}

var _ = Describe("Decode", func() {
	It("reads a good document", func() {
		var c config
		Expect(yamlstrict.Decode([]byte("listener: http://127.0.0.1:1/\nverify:\n  attempts: 3\n  backoff: 2s\n"), &c)).To(Succeed())
		Expect(c.Verify.Backoff).To(Equal(2 * time.Second))
	})

	It("names an unknown field, its line and the known ones, never a Go type", func() {
		var c config
		err := yamlstrict.Decode([]byte("lisener: http://127.0.0.1:1/\n"), &c)
		Expect(err).To(MatchError(`line 1: unknown field "lisener": want one of focus, listener, verify`))
		err = yamlstrict.Decode([]byte("verify:\n  atempts: 3\n"), &c)
		Expect(err).To(MatchError(`line 2: unknown field "atempts": want one of attempts, backoff`))
	})

	It("says what a value should have been", func() {
		var c config
		err := yamlstrict.Decode([]byte("verify:\n  attempts: many\n"), &c)
		Expect(err).To(MatchError(`line 2: "many" is not a whole number`))
		Expect(err.Error()).NotTo(ContainSubstring("yamlstrict_test"))
	})
})
