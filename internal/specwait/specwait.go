// Package specwait sets how long a spec waits for a condition by default.
// Gomega's own default, one second, is a window, not a bound: beside a
// busy CPU (make test-busy) a page redraws, a listener answers or a
// process starts in more than that, and a spec that is right fails.
// A longer bound costs nothing while the condition comes true, which is
// all a spec waits for; it matters only when it never does.
package specwait

import (
	"time"

	"github.com/onsi/gomega"
)

// Timeout is how long Eventually waits unless a spec says otherwise.
const Timeout = 10 * time.Second

// Defaults sets Eventually's default timeout to Timeout; every suite calls
// it before RunSpecs.
func Defaults() { gomega.SetDefaultEventuallyTimeout(Timeout) }
