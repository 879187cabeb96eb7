// Package e2e holds the container specs: the ipnlab image as emulator,
// reference listener and conformance runner, wired together over the
// host's loopback, and `ipnlab conform --listener-image` passing the
// reference listener's image and failing a mutant's. The image is built
// from the working tree (containers/testimage); without a Docker engine
// the specs are skipped outside CI and fail in it.
package e2e
