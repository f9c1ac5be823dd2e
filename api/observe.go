package api

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// RequestObserver records every answered request by route pattern, method
// and status; the metrics package implements it, so the API knows no
// Prometheus.
type RequestObserver interface {
	ObserveRequest(route, method string, status int, elapsed time.Duration)
}

// AccessLog says which requests get a JSON access log line at info: the
// setting access-log, whose values config checks. Any other value is off.
type AccessLog string

// The access log modes.
const (
	AccessLogOff     AccessLog = "off"     // no line
	AccessLogSampled AccessLog = "sampled" // every 5xx, and one in AccessLogEvery of the rest
	AccessLogAll     AccessLog = "all"     // every request
)

// AccessLogEvery is the sampling rate of AccessLogSampled: each logged line
// other than a 5xx stands for this many requests.
const AccessLogEvery = 100

// unmatched labels requests no route matched, so that scanners probing
// random paths add one series, not one per path.
const unmatched = "unmatched"

// recorder remembers the status and size of an answer. Recorders are
// pooled: one per request would be an allocation on every sold-out answer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

var recorders = sync.Pool{New: func() any { return &recorder{} }}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush passes on to the connection, so that streamed answers (SSE) still
// stream through the recorder.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unwrapRecorder is the connection's writer under w, for
// http.MaxBytesReader, which can only close a connection whose body was too
// large through net/http's own writer.
func unwrapRecorder(w http.ResponseWriter) http.ResponseWriter {
	if rec, ok := w.(*recorder); ok {
		return rec.ResponseWriter
	}
	return w
}

// observe measures every request, after chi has routed it (the route
// pattern is known once the handler returned), and writes its access log
// line.
func (h *handler) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := recorders.Get().(*recorder)
		rec.ResponseWriter = w
		next.ServeHTTP(rec, r)
		elapsed := time.Since(start)
		route, status := unmatched, rec.status
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if status == 0 {
			status = http.StatusOK // net/http answers 200 for a handler that wrote nothing
		}
		if h.Observer != nil {
			h.Observer.ObserveRequest(route, methodLabel(r.Method), status, elapsed)
		}
		if h.logged(status) {
			h.accessLog(r, route, status, rec.bytes, elapsed)
		}
		*rec = recorder{}
		recorders.Put(rec)
	})
}

// methodLabel is method if it is one of HTTP's, else "other": a client
// inventing methods must not invent series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// logged says whether the request gets an access log line.
func (h *handler) logged(status int) bool {
	switch h.AccessLog {
	case AccessLogAll:
		return true
	case AccessLogSampled:
		return status >= 500 || h.logSeq.Add(1)%AccessLogEvery == 0
	}
	return false
}

func (h *handler) accessLog(r *http.Request, route string, status int, bytes int64, elapsed time.Duration) {
	sampled := 1
	if h.AccessLog == AccessLogSampled && status < 500 {
		sampled = AccessLogEvery
	}
	h.Log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", methodLabel(r.Method)), slog.String("route", route), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int64("bytes", bytes), slog.String("request_id", requestID(r)),
		slog.String("remote", h.clientIP(r).String()), slog.Int("sampled", sampled))
}
