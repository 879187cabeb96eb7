package emulator_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
)

// The API contract is enforced, not described: every request the specs
// make to an emulator through http.DefaultTransport, and every answer,
// is checked against openapi.yaml; a mismatch fails the spec that made it.
// Requests to listeners are left alone (their paths are not the API's).

var contract = newContractCheck()

var _ = BeforeSuite(func() {
	contract.load()
	http.DefaultTransport = contract.wrap(http.DefaultTransport)
})

var _ = AfterEach(func() {
	Expect(contract.take()).To(BeEmpty(), "requests or answers that openapi.yaml does not allow")
})

type contractCheck struct {
	router   routers.Router
	mu       sync.Mutex
	problems []string
}

func newContractCheck() *contractCheck { return &contractCheck{} }

// text is how the document's non-JSON bodies (the verifier's answer, the
// document itself) are read: as a string.
func text(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

func (c *contractCheck) load() {
	for _, ct := range []string{"text/html", "application/yaml"} {
		openapi3filter.RegisterBodyDecoder(ct, text)
	}
	// The document an emulator with the spec-only plug-in serves: the
	// plug-in's routes are held to their part as the built-ins' are.
	h := &hook{}
	emu, err := emulator.New(emulator.Config{Providers: []emulator.Factory{plug(h, h)}})
	Expect(err).NotTo(HaveOccurred())
	emu.Close()
	doc, err := openapi3.NewLoader().LoadFromData(emu.OpenAPI())
	Expect(err).NotTo(HaveOccurred())
	Expect(doc.Validate(context.Background())).To(Succeed(), "openapi.yaml is not a valid OpenAPI document")
	doc.Servers = nil // match any host: the specs' servers listen on random ports
	c.router, err = gorillamux.NewRouter(doc)
	Expect(err).NotTo(HaveOccurred())
}

func (c *contractCheck) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.problems
	c.problems = nil
	return p
}

func (c *contractCheck) report(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// ours tells the emulator's paths from a listener's.
func ours(path string) bool {
	return strings.HasPrefix(path, "/api/v1/") || path == "/healthz" || path == "/cgi-bin/webscr" || strings.HasPrefix(path, "/paydo/v1/")
}

// anyOperation are the statuses the document says any operation may
// answer (the API token, size limits), checked against its Error.
var anyOperation = map[int]bool{401: true, 413: true, 415: true}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *contractCheck) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if !ours(req.URL.Path) || req.URL.Path == "/api/v1/events" {
			return next.RoundTrip(req) // the event stream never ends: nothing to read whole
		}
		var reqBody []byte
		if req.Body != nil {
			var err error
			if reqBody, err = io.ReadAll(req.Body); err != nil {
				return nil, err
			}
			req.Body.Close()
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		respBody, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if rerr != nil {
			return resp, nil
		}
		c.check(req, reqBody, resp, respBody)
		return resp, nil
	})
}

func (c *contractCheck) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	what := req.Method + " " + req.URL.Path
	if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		return // net/http's own answer, before the API sees the request
	}
	probe := req.Clone(context.Background())
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(probe)
	if err != nil {
		// A spec asking for what is not served must get a 404 or 405 (the
		// route diff holds the served routes to the document).
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			c.report("%s -> %d: not in openapi.yaml: %v", what, resp.StatusCode, err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	// A request the emulator refused (4xx) may break the document on
	// purpose: the specs send bad input to see it refused. The verifier's
	// input is the listener under test, malformed on purpose: it answers
	// anything PayPal's way.
	if resp.StatusCode < 400 && req.URL.Path != "/cgi-bin/webscr" {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.report("%s: request: %v", what, err)
		}
	}
	if anyOperation[resp.StatusCode] && route.Operation.Responses.Status(resp.StatusCode) == nil {
		route = c.errorRoute(route)
	}
	in.Route = route
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.report("%s -> %d: answer: %v", what, resp.StatusCode, err)
	}
}

// errorRoute is route with the document's Error as the answer of the
// statuses any operation may give.
func (c *contractCheck) errorRoute(route *routers.Route) *routers.Route {
	op := *route.Operation
	op.Responses = openapi3.NewResponses()
	for status := range anyOperation {
		op.Responses.Set(fmt.Sprint(status), &openapi3.ResponseRef{Ref: "#/components/responses/Error", Value: route.Spec.Components.Responses["Error"].Value})
	}
	r := *route
	r.Operation = &op
	return &r
}
