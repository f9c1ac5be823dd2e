package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"flashsale/api"
	"flashsale/internal/apitest"
	"flashsale/live"
)

// TestOpenAPIDocumentValidates loads the embedded document with
// kin-openapi's loader and validates it as OpenAPI 3.1.
func TestOpenAPIDocumentValidates(t *testing.T) {
	c, err := apitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Doc().OpenAPI; v != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", v)
	}
}

// TestOpenAPIDocumentsEveryRoute compares the router's routes with the
// document's operations, both ways.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c, err := apitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range c.Doc().Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := map[string]bool{}
	// With a page (any handler) and a hub: their routes exist only then.
	err = chi.Walk(api.NewHandler(api.Deps{Page: http.NotFoundHandler(), Live: &live.Hub{}}).(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// chi's catch-all is one path parameter in the document.
		routed[method+" "+strings.Replace(route, "/*", "/{file}", 1)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for op := range routed {
		if !documented[op] {
			t.Errorf("%s is routed but not in api/openapi.json", op)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("api/openapi.json documents %s, which is not routed", op)
		}
	}
}

// TestServeOpenAPI serves the embedded document as JSON, cacheable, and
// answers a revalidation with its ETag 304.
func TestServeOpenAPI(t *testing.T) {
	h := api.NewHandler(api.Deps{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), api.OpenAPI()) || !json.Valid(rec.Body.Bytes()) {
		t.Fatal("the body is not the embedded document")
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q", cc)
	}
	req := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", rec.Code)
	}
}
