package explore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/listener/mutants"
)

var _ = Describe("TMP", func() {
	It("tmp webhooks", func() {
		var names []string
		for _, m := range mutants.All() {
			if strings.HasPrefix(string(m.Name), "webhook-") {
				names = append(names, string(m.Name))
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for _, m := range names {
			for _, seed := range []uint64{5, 6} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					cfg := withWebhooks(against(m))
					start := time.Now()
					rep, err := explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: seed, MaxShrinks: 1})
					mu.Lock()
					defer mu.Unlock()
					Expect(err).NotTo(HaveOccurred())
					found := "NOT FOUND"
					if rep.Violation != nil {
						found = rep.Violation.Invariant
					}
					fmt.Fprintf(os.Stderr, "RESULT %-32s seed=%d histories=%d %.1fs %s\n", m, seed, rep.Histories, time.Since(start).Seconds(), found)
				}()
			}
		}
		wg.Wait()
	})
})
