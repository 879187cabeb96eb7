package scenarios_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipnlab/ipnlab/scenarios"
)

// FuzzParse: any YAML is loaded or refused with a LoadError naming a line,
// never a panic. The bundled scenarios seed the corpus.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("catalog/*.yaml")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no bundled scenarios to seed with: %v", err)
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{"", "name: x", "steps: [{send: {kind: nope}}]", "&a [*a]", "name: x\nsteps:\n  - advance: 1x\n", "{{{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scenarios.Parse("fuzz.yaml", data)
		if err == nil {
			if sc == nil {
				t.Fatal("nil scenario and no error")
			}
			return
		}
		var le *scenarios.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if le.Line < 1 || le.Msg == "" {
			t.Fatalf("error without a line or a message: %+v", le)
		}
	})
}
