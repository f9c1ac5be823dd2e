package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"flashsale/auth"
	"flashsale/inventory"
	"flashsale/live"
	"flashsale/order"
	"flashsale/ratelimit"
)

// ProblemBase prefixes every problem type; the last path segment names the
// case (RFC 9457).
const ProblemBase = "https://flashsale.example/problems/"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// kind is one row of the error table.
type kind struct {
	slug   string
	title  string
	status int
}

// Problem kinds, by the slug clients match on.
var (
	kValidation   = kind{"validation-error", "Validation error", http.StatusBadRequest}
	kUnauthorized = kind{"unauthorized", "Unauthorized", http.StatusUnauthorized}
	kForbidden    = kind{"forbidden", "Forbidden", http.StatusForbidden}
	kNotFound     = kind{"not-found", "Not found", http.StatusNotFound}
	kTooLarge     = kind{"payload-too-large", "Payload too large", http.StatusRequestEntityTooLarge}
	kMediaType    = kind{"unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType}
	kSoldOut      = kind{"sold-out", "Sold out", http.StatusConflict}
	kLimit        = kind{"purchase-limit-reached", "Purchase limit reached", http.StatusConflict}
	kNotActive    = kind{"sale-not-active", "Sale not active", http.StatusConflict}
	kKeyInUse     = kind{"idempotency-key-in-use", "Idempotency key in use", http.StatusConflict}
	kKeyReused    = kind{"idempotency-key-reused", "Idempotency key reused", http.StatusUnprocessableEntity}
	kRateLimited  = kind{"rate-limited", "Too many requests", http.StatusTooManyRequests}
	kOverloaded   = kind{"overloaded", "Overloaded", http.StatusServiceUnavailable}
	kUnavailable  = kind{"service-unavailable", "Service unavailable", http.StatusServiceUnavailable}
	kNotReady     = kind{"not-ready", "Not ready", http.StatusServiceUnavailable}
	kConflict     = kind{"invalid-state", "Invalid state", http.StatusConflict}
	kInternal     = kind{"internal-error", "Internal server error", http.StatusInternalServerError}
)

// errorTable is the one place domain errors are named for the outside: the
// problem each answers as, and the outcome label the metrics count it
// under. Order matters only where one error wraps another. Rows of kind
// kInternal only name an outcome: over HTTP they are unknown errors.
var errorTable = []struct {
	err   error
	kind  kind
	label string
}{
	{auth.ErrUnauthorized, kUnauthorized, "unauthorized"},
	{order.ErrStockRefused, kSoldOut, "stock_refused"}, // before ErrSoldOut, which it wraps
	{inventory.ErrSoldOut, kSoldOut, "sold_out"},
	{inventory.ErrLimitReached, kLimit, "limit_reached"},
	{inventory.ErrSaleNotActive, kNotActive, "sale_not_active"},
	{inventory.ErrSaleNotFound, kNotFound, "sale_not_found"},
	{ratelimit.ErrLimited, kRateLimited, "rate_limited"},
	{inventory.ErrInvalidSale, kValidation, "invalid"},
	{inventory.ErrInvalidValue, kValidation, "invalid"},
	{inventory.ErrSaleBusy, kOverloaded, "sale_busy"},
	{inventory.ErrKeyClaimed, kInternal, "key_claimed"},
	{inventory.ErrKeyReused, kInternal, "key_reused"},
	{live.ErrClosed, kNotReady, "not_ready"},
	{order.ErrNotFound, kNotFound, "not_found"},
	{order.ErrKeyInUse, kKeyInUse, "key_in_use"},
	{order.ErrKeyReused, kKeyReused, "key_reused"},
	{order.ErrUnavailable, kUnavailable, "unavailable"},
	{inventory.ErrReplyLost, kUnavailable, "reply_lost"}, // after ErrUnavailable, which wraps it past the breaker
	{order.ErrOverloaded, kOverloaded, "overloaded"},
	{order.ErrCommitExpired, kOverloaded, "commit_expired"},
	{order.ErrCommitUnknown, kOverloaded, "commit_unknown"},
	{order.ErrInvalidValue, kValidation, "invalid"},
	{order.ErrAboveLimit, kValidation, "invalid"},
	{order.ErrNotTransitable, kConflict, "not_transitable"},
	{order.ErrDuplicate, kInternal, "duplicate"},
	{errValidation, kValidation, "invalid"},
	{errForbidden, kForbidden, "forbidden"},
	{errTooLarge, kTooLarge, "too_large"},
	{errMediaType, kMediaType, "media_type"},
	{context.Canceled, kInternal, "canceled"},
	{context.DeadlineExceeded, kInternal, "timeout"},
}

// Errors raised by the HTTP layer itself.
var (
	errValidation = errors.New("validation error")
	errForbidden  = errors.New("forbidden")
	errTooLarge   = errors.New("payload too large")
	errMediaType  = errors.New("unsupported media type")
)

// kindOf is the problem err answers as, and whether it is a known one.
func kindOf(err error) (kind, bool) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.kind, row.kind != kInternal
		}
	}
	return kInternal, false
}

// Outcome is the metrics label of err: "ok" for nil, the table's label for
// a named error, and "error" for anything else. The labels are a fixed
// set, so the series stay few.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.label
		}
	}
	return "error"
}

// writeError answers err as problem+json. Known errors carry their own
// detail; unknown ones become a generic 500 and are logged in full.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if (err == inventory.ErrSoldOut || err == inventory.ErrSoldOutHeld) && r.URL.Path == ordersPath {
		writeSoldOut(w, err == inventory.ErrSoldOutHeld)
		return
	}
	k, known := kindOf(err)
	detail := err.Error()
	if !known {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client left; nobody reads the answer
		}
		h.Log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", requestID(r), "err", err)
		detail = "the server failed to handle the request; it has been logged"
	}
	var rl *ratelimit.Error
	var ua *order.UnavailableError
	switch {
	case errors.As(err, &rl):
		setRetryAfter(w, rl.RetryAfter)
		w.Header().Set("RateLimit", strconv.Quote(rl.Limit)+";r=0;t="+strconv.Itoa(retrySeconds(rl.RetryAfter)))
		// The policy named must be the one refused: the buy path sets the
		// buyer's up front, and its script may refuse the client's IP.
		if rl.Limit == "ip" {
			w.Header().Set("RateLimit-Policy", h.ipPolicy)
		}
	case errors.As(err, &ua):
		setRetryAfter(w, ua.RetryAfter) // when the open breaker lets a probe through
	case k.status == http.StatusServiceUnavailable:
		setRetryAfter(w, time.Second)
	case errors.Is(err, inventory.ErrSoldOutHeld):
		setRetryAfter(w, inventory.HeldRetryAfter)
	}
	writeProblem(w, k, detail, r.URL.Path)
}

// ordersPath is where buyers order; its sold-out answer is pre-rendered.
const ordersPath = "/v1/orders"

var (
	problemContentType = []string{"application/problem+json"}
	noStore            = []string{"no-store"}
	soldOutBody        = render(kSoldOut, inventory.ErrSoldOut.Error(), ordersPath)
	heldBody           = render(kSoldOut, inventory.ErrSoldOutHeld.Error(), ordersPath)
	heldRetryAfter     = []string{strconv.Itoa(retrySeconds(inventory.HeldRetryAfter))}
)

// writeSoldOut sends the pre-rendered sold-out answer: most of a flash
// sale's answers are this one. While units are only held by orders still
// committing, it says so and carries Retry-After: they may come back.
func writeSoldOut(w http.ResponseWriter, held bool) {
	h := w.Header()
	h["Content-Type"] = problemContentType
	h["Cache-Control"] = noStore
	body := soldOutBody
	if held {
		h["Retry-After"] = heldRetryAfter
		body = heldBody
	}
	w.WriteHeader(http.StatusConflict)
	_, _ = w.Write(body)
}

func render(k kind, detail, instance string) []byte {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(Problem{Type: ProblemBase + k.slug, Title: k.title, Status: k.status,
		Detail: detail, Instance: instance})
	return b.Bytes()
}

func writeProblem(w http.ResponseWriter, k kind, detail, instance string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(k.status)
	_ = json.NewEncoder(w).Encode(Problem{Type: ProblemBase + k.slug, Title: k.title, Status: k.status,
		Detail: detail, Instance: instance})
}

func retrySeconds(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(d)))
}
