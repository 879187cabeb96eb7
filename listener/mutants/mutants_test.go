package mutants_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
	"github.com/ipnlab/ipnlab/listener/mutants"
)

var _ = Describe("The gallery", func() {
	// A postback with what each rewrite mangles: a space as '+', an empty
	// field, an Adaptive key, a CRLF, windows-1252 bytes.
	const body = "custom=&first_name=J%F6rg&address_street=1+Main+St%0D%0AFlat+2&transaction%5B0%5D.amount=USD+1.00&charset=windows-1252"

	It("gives every mutant a bug of its own, a decoration of the reference listener at one of its seams", func() {
		seen := map[string]mutants.Name{}
		decorations := flawed.Verifiers()
		for _, m := range mutants.All() {
			var key string
			switch m.Seam {
			case mutants.SeamVerifier:
				decorate, ok := decorations[m.Name]
				Expect(ok).To(BeTrue(), "%s has no decoration of the verifier", m.Name)
				key = "verifier|" + verifiedAs(decorate, body)
				Expect(key).NotTo(Equal("verifier|"+verifiedAs(func(v listener.Verifier) listener.Verifier { return v }, body)),
					"%s's decoration verifies as the reference listener does", m.Name)
			case mutants.SeamHandler, mutants.SeamConfig, mutants.SeamRules, mutants.SeamStore, mutants.SeamWebhookVerifier:
				Expect(flawed.Decorated()).To(ContainElement(m.Name), "%s has no decoration of the %s", m.Name, m.Seam)
				key = m.Seam + "|" + string(m.Name) // what each does is held by flawed's specs
			default:
				Fail(fmt.Sprintf("%s: unknown seam %q", m.Name, m.Seam))
			}
			Expect(seen).NotTo(HaveKey(key), "%s and %s are the same bug", m.Name, seen[key])
			seen[key] = m.Name
			got, ok := mutants.Lookup(string(m.Name))
			Expect(ok).To(BeTrue())
			Expect(got.Seam).To(Equal(m.Seam))
		}
		Expect(flawed.Decorated()).To(HaveLen(len(seen)), "a decoration of no mutant")
		_, ok := mutants.Lookup("no-such-mutant")
		Expect(ok).To(BeFalse())
	})
})

// verifiedAs is what decorate does to a verification of body, under the
// listener's Postback to a verifier that answers in turn VERIFIED with
// HTTP 500, "VERIFIED\n" with 200 and INVALID with 200: what the
// verifier was handed, and what came back (a decoration that reads the
// answers its own way shows on one of them).
func verifiedAs(decorate func(listener.Verifier) listener.Verifier, body string) string {
	var out []string
	for _, answer := range []struct {
		status int
		body   string
	}{{http.StatusInternalServerError, "VERIFIED"}, {http.StatusOK, "VERIFIED\n"}, {http.StatusOK, "INVALID"}} {
		var mu sync.Mutex
		var got []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, r.URL.Path+" "+string(raw))
			mu.Unlock()
			w.WriteHeader(answer.status)
			_, _ = io.WriteString(w, answer.body)
		}))
		v := decorate(listener.Postback{URL: srv.URL + "/cgi-bin/webscr", Client: srv.Client(), UserAgent: "spec"})
		verdict, err := v.Verify(context.Background(), []byte(body))
		srv.Close()
		mu.Lock()
		out = append(out, fmt.Sprintf("%q -> %q %v", got, verdict, err != nil))
		mu.Unlock()
	}
	return strings.Join(out, "; ")
}
