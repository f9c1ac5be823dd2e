package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the OpenAPI document ships in the binary
	"encoding/hex"
	"net/http"
	"time"
)

// openAPIDoc is the API's contract; the API tests validate every response
// they get against it, so it describes what the handlers answer.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPIETag names this build's document: a client's cached copy stays
// good until the binary changes.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPIDoc)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// OpenAPI returns the OpenAPI 3.1 document of the API (api/openapi.json).
// Callers must not modify it.
func OpenAPI() []byte { return openAPIDoc }

// serveOpenAPI answers GET /openapi.json, cacheable and revalidated by ETag.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", openAPIETag)
	http.ServeContent(w, r, "openapi.json", time.Time{}, bytes.NewReader(openAPIDoc))
}
