// Package catalog is the bundled scenarios, one file per case, embedded in
// the binary and run by name (ipnlab run NAME) or by the conformance suite.
package catalog

import (
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ipnlab/ipnlab/scenarios"
)

//go:embed *.yaml
var files embed.FS

var errUnknown = errors.New("no bundled scenario")

var (
	once   sync.Once
	loaded map[string]*scenarios.Scenario
	errAll error
)

func load() {
	loaded = map[string]*scenarios.Scenario{}
	entries, _ := files.ReadDir(".")
	for _, e := range entries {
		raw, err := files.ReadFile(e.Name())
		if err != nil {
			errAll = err
			return
		}
		sc, err := scenarios.Parse("catalog/"+e.Name(), raw)
		if err != nil {
			errAll = err
			return
		}
		if want := strings.TrimSuffix(e.Name(), ".yaml"); sc.Name != want {
			errAll = fmt.Errorf("catalog/%s: name %q does not match the file name", e.Name(), sc.Name)
			return
		}
		loaded[sc.Name] = sc
	}
}

// Get returns a bundled scenario by name.
func Get(name string) (*scenarios.Scenario, error) {
	once.Do(load)
	if errAll != nil {
		return nil, errAll
	}
	sc, ok := loaded[name]
	if !ok {
		return nil, fmt.Errorf("%w %q; `ipnlab run --list` names them", errUnknown, name)
	}
	return sc, nil
}

// Names lists the bundled scenarios, sorted.
func Names() ([]string, error) {
	once.Do(load)
	if errAll != nil {
		return nil, errAll
	}
	names := make([]string, 0, len(loaded))
	for n := range loaded {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
