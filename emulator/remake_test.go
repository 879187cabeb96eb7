package emulator_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

var _ = Describe("The command that makes a message again", func() {
	It("quotes every value, so that a pasted line runs nothing and passes each value whole", func() {
		dir := GinkgoT().TempDir()
		// A receiver a sandbox user typed: quotes, $( ), ;, a newline.
		evil := `m'$(touch PWNED)';touch PWNED;echo "` + "\n" + `x@example.com`
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayPal: paypal.Settings{Profile: paypal.Profile{ReceiverEmail: evil, ReceiverID: "ID `touch PWNED`"}}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		ln := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(ln.Close)
		sent, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: ln.URL})
		Expect(err).NotTo(HaveOccurred())
		v, ok := emu.View(sent.ID)
		Expect(ok).To(BeTrue())

		// Pasted into a shell where ipnlab prints its arguments.
		sh := exec.Command("sh", "-c", `ipnlab() { for a in "$@"; do printf '%s\0' "$a"; done; }; `+v.Remake)
		sh.Dir = dir
		out, err := sh.Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(filepath.Join(dir, "PWNED")).NotTo(BeAnExistingFile(), "nothing ran")
		args := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
		got := make([]string, len(args))
		for i, a := range args {
			got[i] = string(a)
		}
		Expect(got).To(Equal([]string{"fixtures", "show", "web_accept", "--raw", "--seed", strconv.FormatUint(uint64(v.Seed), 10),
			"--at", v.Created.UTC().Format("2006-01-02T15:04:05Z07:00"), "--charset", v.Charset,
			"--receiver-email", evil, "--receiver-id", "ID `touch PWNED`"}))
		entries, err := os.ReadDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(BeEmpty())
	})
})
