package form_test

import (
	"bytes"
	"testing"

	"github.com/ipnlab/ipnlab/form"
)

// FuzzParse: any body either fails with a SyntaxError or parses into fields
// whose PayPal encoding parses back to the same fields.
func FuzzParse(f *testing.F) {
	for _, s := range []string{guideBody, "a=1&&b", "first_name=J%F6rg", "x=%zz", "a=%4", "=", "&&&", "t%5B0%5D.a=USD+1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := form.Parse(body)
		if err != nil {
			if _, ok := err.(*form.SyntaxError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		enc := fields.Encode()
		back, err := form.Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if !back.Equal(fields) {
			t.Fatalf("round trip changed %q -> %q", body, enc)
		}
		if !bytes.Equal(back.Encode(), enc) {
			t.Fatalf("encoding not stable for %q", body)
		}
	})
}
