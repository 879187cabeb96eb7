package yamlstrict_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestYAMLStrict(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "yamlstrict")
}
