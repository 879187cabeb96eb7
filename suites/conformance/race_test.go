//go:build race

package conformance_test

// raceDetector is on: the seed sweeps run fewer seeds (the race detector
// makes each run several times slower); make test runs them in full
// without it as well.
const raceDetector = true
