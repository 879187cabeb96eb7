package paypal_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestPayPal(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "paypal")
}
