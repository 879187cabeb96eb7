package emulator_test

import (
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/emulator"
)

var _ = Describe("openapi.yaml", func() {
	It("documents every route the emulator serves, and no route it does not, a plug-in's too", func() {
		h := &hook{}
		emu, err := emulator.New(emulator.Config{Providers: []emulator.Factory{plug(h, h)}})
		Expect(err).NotTo(HaveOccurred())
		defer emu.Close()
		raw := emu.OpenAPI()
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
		served := emu.Routes()
		Expect(served).To(ContainElement("POST /api/v1/hook/notifications"))
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

	It("refuses a provider's part that describes what another part does, or more than paths and components", func() {
		for part, want := range map[string]string{
			"paths:\n  /api/v1/messages: {get: {responses: {\"200\": {description: x}}}}\n": "path /api/v1/messages is described already",
			"paths: {}\ncomponents:\n  schemas:\n    Message: {type: object}\n":             "components.schemas Message is described already",
			"info: {title: mine}\n":                `"info": a part has only paths and components`,
			"components:\n  securitySchemes: {}\n": "components.securitySchemes",
			"paths: [1]\n":                         "path: want a mapping",
		} {
			_, err := emulator.New(emulator.Config{Providers: []emulator.Factory{documentedAs(part)}})
			Expect(err).To(MatchError(emulator.ErrProvider), part)
			Expect(err).To(MatchError(ContainSubstring(want)), part)
		}
	})
})

// documentedAs is a factory of a hook whose OpenAPI part is part.
func documentedAs(part string) emulator.Factory {
	h := &hook{}
	return plug(partHook{h, part}, h)
}

type partHook struct {
	*hook
	part string
}

func (p partHook) OpenAPI() []byte { return []byte(p.part) }
