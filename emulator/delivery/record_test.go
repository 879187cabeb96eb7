package delivery_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/delivery"
)

var _ = Describe("An attempt's JSON", func() {
	It("reads back the duration it wrote, to the microsecond, so a restart shows the same record", func() {
		for us := range 20000 {
			a := delivery.Attempt{Number: 1, Duration: time.Duration(us)*time.Microsecond + 400*time.Nanosecond}
			raw, err := json.Marshal(a)
			Expect(err).NotTo(HaveOccurred())
			var back delivery.Attempt
			Expect(json.Unmarshal(raw, &back)).To(Succeed())
			again, err := json.Marshal(back)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(again)).To(Equal(string(raw)), "%d µs", us)
			Expect(back.Duration).To(Equal(time.Duration(us) * time.Microsecond))
		}
	})
})
