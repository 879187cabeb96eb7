package emulator_test

import (
	"os"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/emulator"
)

var _ = Describe("openapi.yaml", func() {
	It("documents every route the emulator serves, and no route it does not", func() {
		raw, err := os.ReadFile("openapi.yaml")
		Expect(err).NotTo(HaveOccurred())
		var doc struct {
			OpenAPI string                    `yaml:"openapi"`
			Paths   map[string]map[string]any `yaml:"paths"`
		}
		Expect(yaml.Unmarshal(raw, &doc)).To(Succeed())
		Expect(doc.OpenAPI).To(HavePrefix("3."))
		var documented []string
		for path, ops := range doc.Paths {
			for method, op := range ops {
				switch method {
				case "get", "put", "post", "delete", "patch":
					documented = append(documented, strings.ToUpper(method)+" "+path)
					Expect(op).To(HaveKey("responses"), "%s %s has no responses", method, path)
				case "parameters", "summary", "description":
				default:
					Fail("unknown key " + method + " under " + path)
				}
			}
		}
		emu, err := emulator.New(emulator.Config{})
		Expect(err).NotTo(HaveOccurred())
		defer emu.Close()
		served := emu.Routes()
		slices.Sort(documented)
		slices.Sort(served)
		var undocumented, missing []string
		for _, r := range served {
			if !slices.Contains(documented, r) {
				undocumented = append(undocumented, r)
			}
		}
		for _, r := range documented {
			if !slices.Contains(served, r) {
				missing = append(missing, r)
			}
		}
		Expect(undocumented).To(BeEmpty(), "served but not in openapi.yaml")
		Expect(missing).To(BeEmpty(), "in openapi.yaml but not served")
	})
})
