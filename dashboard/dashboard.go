// Package dashboard holds the live sale page's static files (HTML, CSS and
// a little JavaScript, no build step), embedded so the binary serves them
// with no CDN and no network: the page works offline. Its figures come
// from the API's Server-Sent Events stream (api: /dashboard/stream).
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static/*
var static embed.FS

// Prefix is where the page lives.
const Prefix = "/dashboard"

// Handler serves the page at Prefix and its files below it. The page may
// load nothing from elsewhere (Content-Security-Policy), which is what
// keeps it working offline.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	fileServer := http.StripPrefix(Prefix, http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == Prefix:
			http.ServeFileFS(w, r, files, "index.html")
		case strings.HasSuffix(r.URL.Path, "/"): // no directory listings
			http.NotFound(w, r)
		default:
			fileServer.ServeHTTP(w, r)
		}
	})
}
