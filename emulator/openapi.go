package emulator

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// The control API's document is the emulator's own part (History, the
// clock, events, scenarios, and the components every part shares) with
// each provider's paths merged in, so that a provider's routes are
// described, served and checked like the built-ins'.
var (
	//go:embed openapi.yaml
	openapiCore []byte
)

// Documented is a provider that describes its routes in the control API's
// OpenAPI document (GET /api/v1/openapi.yaml). Its part is a YAML document
// with `paths` and, optionally, `components` (schemas, responses,
// parameters of its own); it may refer to the emulator's shared
// components, such as #/components/schemas/MessageView and
// #/components/responses/Error. A path or component another part already
// has is refused at New (ErrProvider).
type Documented interface {
	OpenAPI() []byte
}

// OpenAPI returns the document of the control API this emulator serves:
// its own routes and every Documented provider's.
func (e *Emulator) OpenAPI() []byte { return e.openapi }

// documentAPI merges the providers' parts into the emulator's own.
func (e *Emulator) documentAPI() error {
	var doc yaml.Node
	if err := yaml.Unmarshal(openapiCore, &doc); err != nil {
		return fmt.Errorf("openapi.yaml: %w", err)
	}
	for _, p := range e.providers {
		d, ok := p.(Documented)
		if !ok {
			continue
		}
		if err := mergeOpenAPI(&doc, d.OpenAPI()); err != nil {
			return fmt.Errorf("%w: %s's OpenAPI part: %w", ErrProvider, p.Name(), err)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	e.openapi = buf.Bytes()
	return nil
}

// componentSections are the component kinds a part may add.
var componentSections = map[string]bool{"schemas": true, "responses": true, "parameters": true, "requestBodies": true, "headers": true}

// mergeOpenAPI adds part's paths and components to doc, refusing any key
// doc already has (a part never overrides another's description).
func mergeOpenAPI(doc *yaml.Node, part []byte) error {
	var p yaml.Node
	if err := yaml.Unmarshal(part, &p); err != nil {
		return err
	}
	if len(p.Content) == 0 || p.Content[0].Kind != yaml.MappingNode {
		return errors.New("want a mapping with paths and components")
	}
	root := doc.Content[0]
	for key, value := range pairs(p.Content[0]) {
		switch key.Value {
		case "paths":
			if err := addAll(section(root, "paths"), value, "path"); err != nil {
				return err
			}
		case "components":
			for kind, entries := range pairs(value) {
				if !componentSections[kind.Value] {
					return fmt.Errorf("line %d: components.%s: a part adds schemas, responses, parameters, requestBodies or headers", kind.Line, kind.Value)
				}
				if err := addAll(section(section(root, "components"), kind.Value), entries, "components."+kind.Value); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("line %d: %q: a part has only paths and components (the rest of the document is the emulator's)", key.Line, key.Value)
		}
	}
	return nil
}

// pairs are a mapping node's keys and values, in order (nothing for a
// node that is no mapping).
func pairs(m *yaml.Node) func(func(*yaml.Node, *yaml.Node) bool) {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		if m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if !yield(m.Content[i], m.Content[i+1]) {
				return
			}
		}
	}
}

// section is the mapping under key in m, made if m has none.
func section(m *yaml.Node, key string) *yaml.Node {
	for k, v := range pairs(m) {
		if k.Value == key {
			return v
		}
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// addAll appends from's entries to into, refusing a key into has.
func addAll(into, from *yaml.Node, what string) error {
	if from.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping", from.Line, what)
	}
	have := map[string]bool{}
	for k := range pairs(into) {
		have[k.Value] = true
	}
	for k, v := range pairs(from) {
		if have[k.Value] {
			return fmt.Errorf("line %d: %s %s is described already", k.Line, what, k.Value)
		}
		have[k.Value] = true
		into.Content = append(into.Content, k, v)
	}
	return nil
}
