package listener

import (
	"testing"

	"github.com/ipnlab/ipnlab/form"
)

// FuzzDecodeIPN: any body is decoded or refused, and what is decoded holds
// only the body's own field names, as text in its charset.
func FuzzDecodeIPN(f *testing.F) {
	for _, s := range []string{"txn_id=1&mc_gross=19.95&charset=windows-1252&first_name=J%F6rg", "charset=klingon&a=%FF", "a=%zz", "", "=&="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeIPN(body)
		if err != nil {
			return
		}
		fields, err := form.Parse(body)
		if err != nil {
			t.Fatalf("DecodeIPN accepted what form.Parse refuses: %q", body)
		}
		cs, err := fields.Charset()
		if err != nil {
			cs = form.MustCharset("windows-1252")
		}
		fields = fields.Text(cs)
		for name := range m {
			if _, ok := fields.Get(name); !ok {
				t.Fatalf("field %q not in the body %q", name, body)
			}
		}
	})
}

// FuzzCents: an amount read is written back to the same number of cents.
func FuzzCents(f *testing.F) {
	for _, s := range []string{"19.95", "-4.00", "25", "", "0.5", "92233720368547758.07", "1.234", "-", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := cents(s)
		if err != nil {
			return
		}
		back, err := cents(money(c))
		if err != nil || back != c {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, c, money(c), back, err)
		}
	})
}

// FuzzParsePayDo: any body is refused with a reason or gives a kind, a key
// and a status.
func FuzzParsePayDo(f *testing.F) {
	for _, s := range []string{
		`{"transaction":{"id":"T1","state":2},"invoice":{"id":"I1"}}`,
		`{"transaction":{"identifierTxFrom":"X1","status":2,"amount":"10.50"}}`,
		`{"transaction":{"identifierTxFrom":"X1","status":2,"amount":1e400}}`,
		`{"transaction":null}`, `[]`, `{`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		kind, key, _, _, err := parsePayDo(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error with no reason")
			}
			return
		}
		if (kind != "checkout" && kind != "transfer") || key == "" {
			t.Fatalf("accepted %q as kind %q key %q", body, kind, key)
		}
	})
}
