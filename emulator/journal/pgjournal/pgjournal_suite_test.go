package pgjournal_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestPgjournal(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "pgjournal")
}
