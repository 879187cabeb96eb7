package undertest

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestUndertest(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "undertest")
}

var _ = Describe("docker run's arguments for a listener image", func() {
	It("run it on the host network with each variable, each file read-only and each host name mapped, in a fixed order", func() {
		args := runArgs(Spec{Image: "shop:ci", Args: []string{"serve"},
			Mounts: map[string]string{"/etc/ipnlab/ca.pem": "/home/u/ca.pem", "/etc/ipnlab/bundle.pem": "/home/u/bundle.pem"},
			Hosts:  map[string]string{"ipnpb.sandbox.paypal.com": "127.0.0.1", "ipnpb.paypal.com": "127.0.0.1"},
		}, map[string]string{"SSL_CERT_FILE": "/etc/ipnlab/bundle.pem", "PORT": "8080"})
		Expect(args).To(Equal([]string{"run", "--detach", "--network", "host", "--label", "ipnlab.undertest=true",
			"--env", "PORT=8080", "--env", "SSL_CERT_FILE=/etc/ipnlab/bundle.pem",
			"--volume", "/home/u/bundle.pem:/etc/ipnlab/bundle.pem:ro", "--volume", "/home/u/ca.pem:/etc/ipnlab/ca.pem:ro",
			"--add-host", "ipnpb.paypal.com:127.0.0.1", "--add-host", "ipnpb.sandbox.paypal.com:127.0.0.1",
			"shop:ci", "serve"}))
	})
})
