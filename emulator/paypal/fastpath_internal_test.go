package paypal

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/generate"
)

// The verifier recognises the usual correct postback without decoding it
// (exactPostback). Its verdict must be the full comparison's, for every
// kind, charset, mode and endpoint, with copies sharing a verify_sign.
var _ = Describe("The exact postback's fast path", func() {
	It("gives the full comparison's verdict, every time", func() {
		var msgs []*Message
		byVerify := map[string][]*Message{}
		for seed := uint64(1); seed <= 3; seed++ {
			for _, cs := range []string{"windows-1252", "UTF-8", "windows-1255"} {
				g, err := generate.New(seed, generate.Options{Sandbox: seed%2 == 0, Charset: cs})
				Expect(err).NotTo(HaveOccurred())
				for _, kind := range generate.KindNames() {
					m, err := g.Message(kind, generate.Params{})
					Expect(err).NotTo(HaveOccurred())
					body, err := m.Body()
					Expect(err).NotTo(HaveOccurred())
					for copyN := range 2 { // identical copies share the verify_sign
						msg, err := newMessage(fmt.Sprintf("M%d-%s-%s-%d", seed, cs, kind, copyN), body, kind)
						Expect(err).NotTo(HaveOccurred())
						msgs = append(msgs, msg)
						byVerify[msg.VerifySign] = append(byVerify[msg.VerifySign], msg)
					}
				}
			}
		}
		find := func(sign, txn, track string) []*Message {
			if l := byVerify[sign]; len(l) > 0 {
				return l
			}
			for _, m := range msgs {
				if txn != "" && m.TxnID == txn || track != "" && m.TrackID == track {
					return []*Message{m}
				}
			}
			return nil
		}
		fast := 0
		for _, m := range msgs {
			for _, pb := range []Postback{
				{Method: "POST", Body: append([]byte("cmd=_notify-validate&"), m.Body...), UserAgent: "shop/1.0"},
				{Method: "POST", Body: append([]byte("cmd=_notify-validate&"), m.ResendBody...), UserAgent: "shop/1.0"},
				{Method: "POST", Body: append([]byte("cmd=_notify-validate&"), m.Body...), UserAgent: "shop/1.0", Endpoint: EndpointLive},
				{Method: "POST", Body: append([]byte("cmd=_notify-validate&"), m.Body...), UserAgent: "shop/1.0", Endpoint: EndpointSandbox},
				{Method: "POST", Body: append([]byte("cmd=_notify-validate&"), m.Body...)},
				{Method: "POST", Body: m.Body, RawQuery: "cmd=_notify-validate", UserAgent: "shop/1.0"},
				{Method: "POST", Body: append(append([]byte{}, m.Body...), "&cmd=_notify-validate"...), UserAgent: "shop/1.0"},
			} {
				for _, mode := range []Mode{ModePayPal, ModeStrict} {
					exactFastPath = false
					slow := check(mode, pb, find)
					exactFastPath = true
					got := check(mode, pb, find)
					Expect(got).To(Equal(slow), "%s, %s mode, %q", m.ID, mode, pb.Body[:40])
					if _, ok := exactPostback(pb, find); ok {
						fast++
					}
				}
			}
		}
		Expect(fast).To(BeNumerically(">", len(msgs)), "the fast path was taken")
	})
})

var _ = Describe("Reading a postback's body", func() {
	It("reads the announced length, more than it, or says the body ended early", func() {
		b, err := readBody(strings.NewReader("cmd=_notify-validate&a=1"), 24)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(Equal("cmd=_notify-validate&a=1"))
		b, err = readBody(strings.NewReader("cmd=_notify-validate&a=1&b=2"), 24)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(Equal("cmd=_notify-validate&a=1&b=2"), "nothing is lost")
		_, err = readBody(strings.NewReader("cmd=_notify"), 24)
		Expect(err).To(MatchError(ContainSubstring("the body ended before its Content-Length")))
		b, err = readBody(strings.NewReader("no length"), -1)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(Equal("no length"))
	})
})
