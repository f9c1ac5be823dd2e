// Package api is flashsale's HTTP order API: authentication, rate limits,
// idempotent order placement, and RFC 9457 problem details for every error.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-redis/redis_rate/v10"

	"flashsale/auth"
	"flashsale/inventory"
	"flashsale/live"
	"flashsale/order"
	"flashsale/ratelimit"
)

// Check is one dependency /readyz looks at.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps is everything the API needs, wired by cmd.
type Deps struct {
	Orders         *order.Service
	Sales          *inventory.Service
	Verifier       *auth.Verifier
	Limiter        *redis_rate.Limiter // rate limits of the endpoints other than the buy path
	KeyPrefix      string              // prefixes the limiter's Redis keys, like every other key
	Limits         ratelimit.Limits
	TrustedProxies []netip.Prefix
	MaxBodyBytes   int64
	Ready          []Check
	Log            *slog.Logger
	// The live sale page (/dashboard; none when Page is nil): its static
	// files, the instance's latest figures as JSON, and a channel closed
	// when the server shuts down, which ends the page's streams.
	Page      http.Handler
	Figures   func() json.RawMessage
	Closing   <-chan struct{}
	Observer  RequestObserver // records every request (RED metrics); nil records nothing
	AccessLog AccessLog       // which requests get an access log line
	// Live serves the event streams; nil leaves them out.
	Live               *live.Hub
	StreamWriteTimeout time.Duration // bounds each write on a stream
}

type handler struct {
	Deps
	userPolicy       string
	userPolicyHeader []string // userPolicy as a header value, never modified
	ipPolicy         string
	reqPrefix        string        // this instance's request ids: host/random-
	reqSeq           atomic.Uint64 // and a counter
	logSeq           atomic.Uint64 // requests seen by the sampled access log
}

// NewHandler returns the API's router.
func NewHandler(d Deps) http.Handler {
	h := &handler{Deps: d,
		userPolicy: fmt.Sprintf(`"buyer";q=%d;w=1`, d.Limits.UserRate),
		ipPolicy:   fmt.Sprintf(`"ip";q=%d;w=1`, d.Limits.IPRate),
	}
	h.userPolicyHeader = []string{h.userPolicy}
	r := chi.NewRouter()
	h.reqPrefix = requestIDPrefix()
	r.Use(h.requestID, h.observe, h.recoverer, h.limitBody)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, kNotFound, "no such route", r.URL.Path) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, kind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}, r.Method+" is not allowed here", r.URL.Path)
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", h.ready)
	r.Get("/openapi.json", serveOpenAPI)
	// One routing tree, no mounted sub-router: a mount is a second route
	// lookup on every request, the sold-out answers included.
	r.With(h.limitIP).Get("/v1/sales/{id}", h.getSale)
	if d.Live != nil {
		r.With(h.limitIP).Get("/v1/sales/{id}/events", h.saleEvents)
		r.With(tokenFromQuery, h.authenticate, h.limitBuyer).Get("/v1/orders/{id}/events", h.orderEvents)
	}
	r.Group(func(r chi.Router) {
		r.Use(h.authenticate)
		// The buy path's rate limits run inside the reservation script.
		r.Post("/v1/orders", h.placeOrder)
		r.With(h.limitBuyer).Get("/v1/orders", h.listOrders)
		r.With(h.limitBuyer).Get("/v1/orders/{id}", h.getOrder)
		r.With(h.limitBuyer).Post("/v1/orders/{id}/pay", h.payOrder)
		r.With(h.limitBuyer).Post("/v1/orders/{id}/cancel", h.cancelOrder)
		r.Group(func(r chi.Router) {
			r.Use(h.requireAdmin)
			r.Post("/v1/admin/sales", h.createSale)
			r.Post("/v1/admin/sales/{id}/restock", h.restock)
			r.Post("/v1/admin/sales/{id}/reconcile", h.reconcile)
		})
	})
	if d.Page != nil { // the live sale page (api/dashboard.go)
		r.Get("/", http.RedirectHandler("/dashboard", http.StatusFound).ServeHTTP)
		r.With(h.limitIP).Get("/dashboard/stream", h.saleStream)
		r.Get("/dashboard", d.Page.ServeHTTP)
		r.Get("/dashboard/*", d.Page.ServeHTTP)
	}
	return r
}

type ctxKey int

const stateKey ctxKey = 1

// reqState is what the middleware learns about a request, in its context
// once: a context value and a request copy per fact would be two
// allocations each on every sold-out answer.
type reqState struct {
	id     string // the client's X-Request-Id, if it sent one
	prefix string // else this instance's prefix
	seq    uint64 // and number, formatted only when a log line asks
	claims auth.Claims
}

// withState returns r's state, adding an empty one if it has none yet.
func withState(r *http.Request) (*http.Request, *reqState) {
	if st, ok := r.Context().Value(stateKey).(*reqState); ok {
		return r, st
	}
	st := &reqState{}
	return r.WithContext(context.WithValue(r.Context(), stateKey, st)), st
}

// requestID is r's id, as the requestID middleware gave it.
func requestID(r *http.Request) string {
	st, ok := r.Context().Value(stateKey).(*reqState)
	switch {
	case !ok:
		return ""
	case st.id != "":
		return st.id
	default:
		return st.prefix + strconv.FormatUint(st.seq, 10)
	}
}

// requestID gives each request an id, as chi's middleware.RequestID does
// (the client's X-Request-Id, else this instance's prefix and a counter),
// without chi's fmt.Sprintf on every request of a flash sale.
func (h *handler) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, st := withState(r)
		st.id = r.Header.Get(middleware.RequestIDHeader)
		if st.id == "" {
			st.prefix, st.seq = h.reqPrefix, h.reqSeq.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// requestIDPrefix is host/random-, unique enough to tell instances apart
// in merged logs.
func requestIDPrefix() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + "/" + base64.RawURLEncoding.EncodeToString(b[:]) + "-"
}

func (h *handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.Log.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "request_id", requestID(r),
					"panic", fmt.Sprint(v))
				writeProblem(w, kInternal, "the server failed to handle the request; it has been logged", r.URL.Path)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (h *handler) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > h.MaxBodyBytes {
			writeProblem(w, kTooLarge, fmt.Sprintf("bodies are limited to %d bytes", h.MaxBodyBytes), r.URL.Path)
			return
		}
		r.Body = http.MaxBytesReader(unwrapRecorder(w), r.Body, h.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flashsale"`)
			writeProblem(w, kUnauthorized, "an Authorization: Bearer token is required", r.URL.Path)
			return
		}
		c, err := h.Verifier.Verify(token)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flashsale", error="invalid_token"`)
			writeProblem(w, kUnauthorized, "the bearer token is not valid", r.URL.Path)
			return
		}
		r, st := withState(r)
		st.claims = c
		next.ServeHTTP(w, r)
	})
}

// claims are the authenticated caller's, zero before authenticate.
func claims(r *http.Request) auth.Claims {
	if st, ok := r.Context().Value(stateKey).(*reqState); ok {
		return st.claims
	}
	return auth.Claims{}
}

func (h *handler) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !claims(r).Admin {
			h.writeError(w, r, fmt.Errorf("%w: this endpoint needs the admin role", errForbidden))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the peer, or the nearest untrusted address in
// X-Forwarded-For when the peer is a trusted proxy. A peer without an IP
// (a unix socket) is the zero Addr: such peers share one limit.
func (h *handler) clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !h.trusted(ip) {
		return ip
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = hop.Unmap()
		if !h.trusted(ip) {
			break
		}
	}
	return ip
}

func (h *handler) trusted(ip netip.Addr) bool {
	for _, p := range h.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (h *handler) limitIP(next http.Handler) http.Handler {
	return h.limit(func(r *http.Request) (string, redis_rate.Limit, string) {
		return h.KeyPrefix + ":ip:" + h.clientIP(r).String(), redis_rate.Limit{Rate: h.Limits.IPRate, Burst: h.Limits.IPBurst, Period: time.Second}, "ip"
	}, h.ipPolicy, next)
}

func (h *handler) limitBuyer(next http.Handler) http.Handler {
	return h.limit(func(r *http.Request) (string, redis_rate.Limit, string) {
		return h.KeyPrefix + ":buyer:" + claims(r).Subject, redis_rate.Limit{Rate: h.Limits.UserRate, Burst: h.Limits.UserBurst, Period: time.Second}, "buyer"
	}, h.userPolicy, next)
}

// limit applies a GCRA limit kept in Redis node 1.
func (h *handler) limit(key func(*http.Request) (string, redis_rate.Limit, string), policy string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, lim, name := key(r)
		res, err := h.Limiter.Allow(r.Context(), k, lim)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		w.Header().Set("RateLimit-Policy", policy)
		if res.Allowed == 0 {
			h.writeError(w, r, &ratelimit.Error{Limit: name, RetryAfter: res.RetryAfter})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ready answers 200 when every dependency answers, and 503 naming those
// that do not.
func (h *handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var down []string
	var wg sync.WaitGroup
	for _, c := range h.Ready {
		wg.Go(func() {
			if err := c.Check(ctx); err != nil {
				mu.Lock()
				down = append(down, c.Name+": "+err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(down) > 0 {
		setRetryAfter(w, time.Second)
		writeProblem(w, kNotReady, "down: "+strings.Join(down, "; "), r.URL.Path)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly: the right media type, no unknown
// fields, no trailing data, within the size limit.
func decode(r *http.Request, v any) error {
	b, err := readJSON(r)
	if err != nil {
		return err
	}
	return strictDecode(b, v)
}

// readJSON checks the media type and reads the body within the size limit.
func readJSON(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, fmt.Errorf("%w: send Content-Type: application/json", errMediaType)
		}
	}
	b, err := readAll(r.Body, r.ContentLength)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

// bodyError words a failed body read; apart from readJSON's happy path,
// where the error target would cost a heap allocation per request.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: bodies are limited to %d bytes", errTooLarge, tooLarge.Limit)
	}
	return err
}

// readAll is io.ReadAll starting from the announced length (its 512-byte
// first buffer was a tenth of the bytes a sold-out answer allocates); the
// body's reader, not the announcement, bounds what is read.
func readAll(body io.Reader, announced int64) ([]byte, error) {
	b := make([]byte, 0, min(max(announced, 0), 4096)+1) // +1: EOF needs room to be seen
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %s", errValidation, err.Error())
	}
	if dec.More() {
		return fmt.Errorf("%w: body: one JSON object expected", errValidation)
	}
	return nil
}

func pathSaleID(r *http.Request) (inventory.SaleID, error) {
	return inventory.ParseSaleID(chi.URLParam(r, "id"))
}
