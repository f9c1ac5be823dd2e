package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"flashsale/inventory"
	"flashsale/order"
)

type placeOrderBody struct {
	SaleID   *string `json:"sale_id"`
	Quantity *int64  `json:"quantity"`
}

type orderJSON struct {
	ID          string `json:"id"`
	SaleID      string `json:"sale_id"`
	UserID      string `json:"user_id"`
	Quantity    int    `json:"quantity"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Status      string `json:"status"`
	CreatedAt   string `json:"created_at"`
	ExpiresAt   string `json:"expires_at"`
}

func toOrderJSON(o order.Order) orderJSON {
	return orderJSON{ID: o.ID.String(), SaleID: o.SaleID.String(), UserID: o.Buyer.String(), Quantity: o.Quantity,
		AmountCents: o.AmountCents, Currency: o.Currency, Status: string(o.Status),
		CreatedAt: o.CreatedAt.Format(time.RFC3339Nano), ExpiresAt: o.ExpiresAt.Format(time.RFC3339Nano)}
}

// parsePlace turns the request into an always-valid PlaceRequest.
func (h *handler) parsePlace(r *http.Request) (order.PlaceRequest, error) {
	b, err := readJSON(r)
	if err != nil {
		return order.PlaceRequest{}, err
	}
	sale, n, ok := fastPlaceBody(b)
	if !ok {
		// Anything but the canonical shape takes the strict decoder.
		if sale, n, err = strictPlaceBody(b); err != nil {
			return order.PlaceRequest{}, err
		}
	}
	buyer, err := order.ParseBuyerID(claims(r).Subject)
	if err != nil {
		return order.PlaceRequest{}, err
	}
	key, err := order.ParseIdemKey(r.Header.Get("Idempotency-Key"))
	if err != nil {
		return order.PlaceRequest{}, err
	}
	qty, err := inventory.NewQuantity(n)
	if err != nil {
		return order.PlaceRequest{}, err
	}
	return order.PlaceRequest{Buyer: buyer, Key: key, Sale: sale, Qty: qty, ClientIP: h.clientIP(r)}, nil
}

// strictPlaceBody reads an order body with encoding/json, refusing
// unknown fields and missing ones, and words what is wrong.
func strictPlaceBody(b []byte) (inventory.SaleID, int64, error) {
	var body placeOrderBody
	if err := strictDecode(b, &body); err != nil {
		return inventory.SaleID{}, 0, err
	}
	if body.SaleID == nil || body.Quantity == nil {
		return inventory.SaleID{}, 0, fmt.Errorf("%w: sale_id and quantity are required", errValidation)
	}
	sale, err := inventory.ParseSaleID(*body.SaleID)
	return sale, *body.Quantity, err
}

// placeOrder is the buy path. Only a 201 is ever replayed for a key: a
// refusal stores nothing, so a retry is judged afresh.
func (h *handler) placeOrder(w http.ResponseWriter, r *http.Request) {
	w.Header()["Ratelimit-Policy"] = h.userPolicyHeader // canonical key, shared value: no copy per request
	req, err := h.parsePlace(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	o, replayed, err := h.Orders.Place(r.Context(), req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/orders/"+o.ID.String())
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusCreated, toOrderJSON(o))
}

func (h *handler) getOrder(w http.ResponseWriter, r *http.Request) {
	h.onOrder(w, r, h.Orders.Get)
}

// payOrder stands in for the payment provider's confirmation: the buyer's
// pending order becomes paid (200), or 409 invalid-state when it is no
// longer pending or its payment window has closed.
func (h *handler) payOrder(w http.ResponseWriter, r *http.Request) {
	h.onOrder(w, r, h.Orders.Pay)
}

// cancelOrder cancels the buyer's pending order and returns its units
// (200), or 409 invalid-state when it is no longer pending.
func (h *handler) cancelOrder(w http.ResponseWriter, r *http.Request) {
	h.onOrder(w, r, h.Orders.Cancel)
}

// orderRef is the token's buyer and the order the path names.
func orderRef(r *http.Request) (order.BuyerID, order.ID, error) {
	id, err := order.ParseID(chi.URLParam(r, "id"))
	if err != nil {
		return order.BuyerID{}, order.ID{}, err
	}
	buyer, err := order.ParseBuyerID(claims(r).Subject)
	return buyer, id, err
}

// onOrder runs fn on the order the path names, as the token's buyer, and
// answers it; another buyer's order is 404.
func (h *handler) onOrder(w http.ResponseWriter, r *http.Request,
	fn func(context.Context, order.BuyerID, order.ID) (order.Order, error)) {
	buyer, id, err := orderRef(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	o, err := fn(r.Context(), buyer, id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toOrderJSON(o))
}

type orderPageJSON struct {
	Orders     []orderJSON `json:"orders"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (h *handler) listOrders(w http.ResponseWriter, r *http.Request) {
	limit, before, err := parsePageQuery(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	buyer, err := order.ParseBuyerID(claims(r).Subject)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := h.Orders.List(r.Context(), buyer, before, limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := orderPageJSON{Orders: make([]orderJSON, 0, len(page.Orders))}
	for _, o := range page.Orders {
		out.Orders = append(out.Orders, toOrderJSON(o))
	}
	if page.Next != nil {
		out.NextCursor = encodeCursor(*page.Next)
	}
	writeJSON(w, http.StatusOK, out)
}

func parsePageQuery(r *http.Request) (int, *order.ID, error) {
	q := r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return 0, nil, fmt.Errorf("%w: limit must be an integer 1-100", errValidation)
		}
		limit = n
	}
	if !q.Has("cursor") {
		return limit, nil, nil
	}
	id, err := decodeCursor(q.Get("cursor"))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: cursor is not one this API returned", errValidation)
	}
	return limit, &id, nil
}

// Cursors are opaque to clients, so the paging scheme can change.
func encodeCursor(id order.ID) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o1:" + id.String()))
}

func decodeCursor(s string) (order.ID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 4 || string(b[:3]) != "o1:" {
		return order.ID{}, fmt.Errorf("bad cursor")
	}
	return order.ParseID(string(b[3:]))
}
