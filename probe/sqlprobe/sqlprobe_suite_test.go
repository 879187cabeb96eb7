package sqlprobe_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestSQLProbe(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "sqlprobe")
}
