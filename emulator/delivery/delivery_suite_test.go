package delivery_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestDelivery(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "delivery")
}

// doubling is the schedule the specs retry on: 10 s doubling, capped at
// 24 h, 15 retries (PayPal's shape; the engine knows no provider's).
func doubling() delivery.Backoff {
	return delivery.Backoff{Initial: 10 * time.Second, Factor: 2, Max: 24 * time.Hour, MaxRetries: 15}
}
