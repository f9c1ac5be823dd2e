// Package apitest checks the API's answers against its OpenAPI document
// (api/openapi.json) in tests, so the document cannot drift from what the
// handlers do: every test that talks to the API through Transport fails
// when an answer is not one the document describes.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"flashsale/api"
)

// Contract is a loaded OpenAPI document and its router.
type Contract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	loadOnce sync.Once
	loaded   *Contract
	loadErr  error
)

// Load parses and validates the API's document, once per test binary.
func Load() (*Contract, error) {
	loadOnce.Do(func() { loaded, loadErr = Parse(api.OpenAPI()) })
	return loaded, loadErr
}

// Parse loads an OpenAPI document, validates it and builds its router.
func Parse(doc []byte) (*Contract, error) {
	d, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	r, err := legacy.NewRouter(d)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Contract{doc: d, router: r}, nil
}

// Doc is the loaded document.
func (c *Contract) Doc() *openapi3.T { return c.doc }

func init() {
	// The page is text; kin-openapi has no decoder of its own for it.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// Check validates one answer (status, documented headers, body) to req
// against the document. body is the whole body, or nil for a stream
// (text/event-stream), whose body is not read.
func (c *Contract) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return c.checkUnrouted(req, status, header, body, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: body == nil},
	}
	if body != nil {
		in.SetBodyBytes(body)
	}
	return openapi3filter.ValidateResponse(req.Context(), in)
}

// checkUnrouted accepts the problem answer of a route the API does not
// have (404, or 405 for a known path), and nothing else: an answer of an
// undocumented operation is drift.
func (c *Contract) checkUnrouted(req *http.Request, status int, header http.Header, body []byte, routeErr error) error {
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		return fmt.Errorf("%s %s is not in the document (%v) but answered %d", req.Method, req.URL.Path, routeErr, status)
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/problem+json" {
		return fmt.Errorf("%s %s: %d with Content-Type %q, not a problem", req.Method, req.URL.Path, status, mt)
	}
	schema := c.doc.Components.Schemas[fmt.Sprintf("Problem%d", status)]
	if schema == nil {
		return fmt.Errorf("the document has no Problem%d schema", status)
	}
	v, err := openapi3filter.JSONBodyDecoder(bytes.NewReader(body), header, schema, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %d body: %w", req.Method, req.URL.Path, status, err)
	}
	return schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse())
}

// Transport returns a RoundTripper that sends through next and records
// every answer; when t ends, it fails t (t.Errorf) for each answer the
// document does not describe. The check waits for the end of the test so
// its CPU does not slow the service under test (a burst's commits would
// miss their deadline), and identical answers (most of a sold-out burst)
// are checked once. Bodies are read whole and handed on unchanged, except
// event streams, which pass through unread.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	c, err := Load()
	if err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	tr := &transport{c: c, next: next, seen: map[string]bool{}}
	t.Cleanup(func() {
		errs := tr.check()
		for _, err := range errs[:min(len(errs), maxReported)] {
			t.Error(err)
		}
		if len(errs) > maxReported {
			t.Errorf("and %d more answers api/openapi.json does not describe", len(errs)-maxReported)
		}
	})
	return tr
}

// maxReported bounds the errors of one test: a wrong schema fails every answer alike.
const maxReported = 5

type transport struct {
	c    *Contract
	next http.RoundTripper

	mu      sync.Mutex
	seen    map[string]bool // answers recorded, by key
	answers []answer
}

// answer is one request and its answer, as far as the document speaks of them.
type answer struct {
	req    *http.Request // method and URL only
	status int
	header http.Header
	body   []byte // nil for a stream
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	var body []byte
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			// The caller's read fails as it would have; nothing whole to check.
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), failedReader{err}))
			return resp, nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if body == nil {
			body = []byte{}
		}
	}
	tr.record(answer{req: &http.Request{Method: req.Method, URL: req.URL, Header: http.Header{}},
		status: resp.StatusCode, header: resp.Header.Clone(), body: body})
	return resp, nil
}

func (tr *transport) record(a answer) {
	k := a.key()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !tr.seen[k] {
		tr.seen[k] = true
		tr.answers = append(tr.answers, a)
	}
}

// key is what the check of a depends on: the same key, the same verdict.
func (a answer) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d\n", a.req.Method, a.req.URL.Path, a.status)
	names := make([]string, 0, len(a.header))
	for k := range a.header {
		if k != "Date" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %q\n", k, a.header[k])
	}
	fmt.Fprintf(&b, "stream=%t\n", a.body == nil)
	b.Write(a.body)
	return b.String()
}

// check validates the answers recorded so far.
func (tr *transport) check() []error {
	tr.mu.Lock()
	answers := tr.answers
	tr.answers = nil
	tr.mu.Unlock()
	var errs []error
	for _, a := range answers {
		if err := tr.c.Check(a.req, a.status, a.header, a.body); err != nil {
			errs = append(errs, fmt.Errorf("%s %s answered %d, which api/openapi.json does not describe: %w\nbody: %.2000s",
				a.req.Method, a.req.URL.RequestURI(), a.status, err, a.body))
		}
	}
	return errs
}

// failedReader ends a replayed body with the error its first read met.
type failedReader struct{ err error }

func (f failedReader) Read([]byte) (int, error) { return 0, f.err }
