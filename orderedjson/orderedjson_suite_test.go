package orderedjson_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestOrderedJSON(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "orderedjson")
}
