package api

import (
	"fmt"
	"net/http"
	"time"

	"flashsale/inventory"
)

type createSaleBody struct {
	SKU          *string    `json:"sku"`
	Title        *string    `json:"title"`
	PriceCents   *int64     `json:"price_cents"`
	Currency     *string    `json:"currency"`
	Stock        *int       `json:"stock"`
	PerUserLimit *int       `json:"per_user_limit"`
	StartsAt     *time.Time `json:"starts_at"`
	EndsAt       *time.Time `json:"ends_at"`
}

func (b createSaleBody) parse() (inventory.NewSale, error) {
	if b.SKU == nil || b.Title == nil || b.PriceCents == nil || b.Currency == nil || b.Stock == nil ||
		b.PerUserLimit == nil || b.StartsAt == nil || b.EndsAt == nil {
		return inventory.NewSale{}, fmt.Errorf("%w: sku, title, price_cents, currency, stock, per_user_limit, starts_at and ends_at are required", errValidation)
	}
	return inventory.NewSale{SKU: *b.SKU, Title: *b.Title, PriceCents: *b.PriceCents, Currency: *b.Currency,
		Stock: *b.Stock, PerUserLimit: *b.PerUserLimit, StartsAt: b.StartsAt.UTC(), EndsAt: b.EndsAt.UTC()}, nil
}

type saleJSON struct {
	ID           string `json:"id"`
	SKU          string `json:"sku"`
	Title        string `json:"title"`
	PriceCents   int64  `json:"price_cents"`
	Currency     string `json:"currency"`
	Stock        int    `json:"stock"`
	PerUserLimit int    `json:"per_user_limit"`
	StartsAt     string `json:"starts_at"`
	EndsAt       string `json:"ends_at"`
	State        string `json:"state"`
	Remaining    int    `json:"remaining"`
	SoldOut      string `json:"sold_out,omitempty"` // held or gone; omitted unless sold out
	Held         *int   `json:"held,omitempty"`     // units held; omitted unless sold out and counted
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

func toSaleJSON(v inventory.SaleView) saleJSON {
	j := saleJSON{ID: v.ID.String(), SKU: v.SKU, Title: v.Title, PriceCents: v.PriceCents, Currency: v.Currency,
		Stock: v.Stock, PerUserLimit: v.PerUserLimit, StartsAt: v.StartsAt.Format(time.RFC3339Nano),
		EndsAt: v.EndsAt.Format(time.RFC3339Nano), State: string(v.State), Remaining: v.Remaining,
		CreatedAt: v.CreatedAt.Format(time.RFC3339Nano), UpdatedAt: v.UpdatedAt.Format(time.RFC3339Nano)}
	if so := v.SoldOut; so != nil {
		j.SoldOut = "gone"
		if so.Held {
			j.SoldOut = "held"
		}
		if so.Units >= 0 {
			j.Held = &so.Units
		}
	}
	return j
}

func (h *handler) createSale(w http.ResponseWriter, r *http.Request) {
	var body createSaleBody
	if err := decode(r, &body); err != nil {
		h.writeError(w, r, err)
		return
	}
	n, err := body.parse()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.Sales.CreateSale(r.Context(), n)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/sales/"+v.ID.String())
	writeJSON(w, http.StatusCreated, toSaleJSON(v))
}

// pathSale reads the sale the path names, with its live state.
func (h *handler) pathSale(r *http.Request) (inventory.SaleView, error) {
	id, err := pathSaleID(r)
	if err != nil {
		return inventory.SaleView{}, err
	}
	return h.Sales.Sale(r.Context(), id)
}

func (h *handler) getSale(w http.ResponseWriter, r *http.Request) {
	v, err := h.pathSale(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSaleJSON(v))
}

type restockBody struct {
	Quantity *int64 `json:"quantity"`
}

func (h *handler) restock(w http.ResponseWriter, r *http.Request) {
	id, err := pathSaleID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var body restockBody
	if err := decode(r, &body); err != nil {
		h.writeError(w, r, err)
		return
	}
	if body.Quantity == nil {
		h.writeError(w, r, fmt.Errorf("%w: quantity is required", errValidation))
		return
	}
	q, err := inventory.NewQuantity(*body.Quantity)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v, err := h.Sales.Restock(r.Context(), id, q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSaleJSON(v))
}

func (h *handler) reconcile(w http.ResponseWriter, r *http.Request) {
	id, err := pathSaleID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	res, err := h.Sales.Reconcile(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reconciledJSON{Confirmed: res.Confirmed, Released: res.Released,
		UnitsReturned: res.UnitsReturned, Pending: res.Pending})
}

// reconciledJSON is the answer of a reconciliation (openapi.json's Reconciled).
type reconciledJSON struct {
	Confirmed     int `json:"confirmed"`
	Released      int `json:"released"`
	UnitsReturned int `json:"units_returned"`
	Pending       int `json:"pending"`
}
