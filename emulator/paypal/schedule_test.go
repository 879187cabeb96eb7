package paypal_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/paypal"
)

var _ = Describe("PayPal's resend schedule", func() {
	It("doubles from 10 s, capped at 24 h, for 15 retries: the 15th 69.5 h in, a 16th at 93.5 h (about four days)", func() {
		s := paypal.DefaultSchedule()
		Expect(s.Validate()).To(Succeed())
		w, _ := s.Next(1)
		Expect(w).To(Equal(10 * time.Second))
		w, _ = s.Next(15)
		Expect(w).To(Equal(24 * time.Hour))
		_, ok := s.Next(16)
		Expect(ok).To(BeFalse())
		Expect(s.Elapsed(15)).To(Equal(250230 * time.Second))
		s.MaxRetries = 16
		Expect(s.Elapsed(16)).To(Equal(336630 * time.Second))
	})
})
