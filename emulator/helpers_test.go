package emulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// lab is an emulator on a manual clock and a listener wired to it.
type lab struct {
	emu      *emulator.Emulator
	clk      *clock.Manual
	api      *httptest.Server
	listener *testListener
	lsrv     *httptest.Server
}

// testListener acks with status, and posts back with transform applied.
type testListener struct {
	mu        sync.Mutex
	verifyURL string
	status    int
	transform func([]byte) []byte
	bodies    [][]byte
	verdicts  []string
}

func (l *testListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.bodies = append(l.bodies, body)
	status, transform := l.status, l.transform
	l.mu.Unlock()
	pb := append([]byte("cmd=_notify-validate&"), body...)
	if transform != nil {
		pb = transform(body)
	}
	req, _ := http.NewRequest("POST", l.verifyURL, bytes.NewReader(pb))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "test-listener/1.0")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		v, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		l.mu.Lock()
		l.verdicts = append(l.verdicts, string(v))
		l.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (l *testListener) set(status int, transform func([]byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status, l.transform = status, transform
}

func (l *testListener) received() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.bodies...)
}

func newLab(mode paypal.Mode) *lab {
	l := &lab{clk: clock.NewManual(t0), listener: &testListener{status: 200}}
	var err error
	l.emu, err = emulator.New(emulator.Config{Clock: l.clk, PayPal: paypal.Settings{Verify: mode}, Seed: 99, AckTimeout: 2 * time.Second})
	Expect(err).NotTo(HaveOccurred())
	l.api = httptest.NewServer(l.emu)
	l.listener.verifyURL = l.api.URL + "/cgi-bin/webscr"
	l.lsrv = httptest.NewServer(l.listener)
	return l
}

func (l *lab) close() {
	l.emu.Close()
	l.lsrv.Close()
	l.api.Close()
}

// call makes an API request and decodes the JSON answer into a map.
func (l *lab) call(method, path string, body any) (int, map[string]any) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		Expect(err).NotTo(HaveOccurred())
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, l.api.URL+path, rd)
	Expect(err).NotTo(HaveOccurred())
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		Expect(json.Unmarshal(raw, &out)).To(Succeed(), string(raw))
	}
	return resp.StatusCode, out
}

func (l *lab) send(req map[string]any) map[string]any {
	if _, ok := req["notify_url"]; !ok {
		req["notify_url"] = l.lsrv.URL + "/ipn"
	}
	code, msg := l.call("POST", "/api/v1/paypal/notifications", req)
	Expect(code).To(Equal(201), "%v", msg)
	return msg
}

func (l *lab) message(id string) map[string]any {
	code, msg := l.call("GET", "/api/v1/messages/"+id, nil)
	Expect(code).To(Equal(200))
	return msg
}

func verdicts(msg map[string]any) []string {
	var out []string
	for _, p := range msg["postbacks"].([]any) {
		out = append(out, p.(map[string]any)["verdict"].(map[string]any)["result"].(string))
	}
	return out
}

func newRealLab() *lab {
	l := &lab{listener: &testListener{status: 200}}
	var err error
	l.emu, err = emulator.New(emulator.Config{})
	Expect(err).NotTo(HaveOccurred())
	l.api = httptest.NewServer(l.emu)
	l.lsrv = httptest.NewServer(l.listener)
	return l
}

// hangingHandler reads the request, tells arrived, and answers only when
// release closes.
func hangingHandler(release <-chan struct{}, arrived chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
