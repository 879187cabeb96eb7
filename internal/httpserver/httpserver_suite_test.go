package httpserver_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestHTTPServer(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "httpserver")
}
