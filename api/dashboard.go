package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"flashsale/inventory"
)

// The sale page's stream: one event a second, each the sale as GET
// /v1/sales/{id} shows it plus the instance's live figures.
const (
	streamEvery     = time.Second
	streamSaleQuery = 2 * time.Second
)

// streamEvent is one Server-Sent Event of the sale page.
type streamEvent struct {
	Sale     *saleJSON       `json:"sale,omitempty"`
	Error    string          `json:"error,omitempty"` // why the sale could not be read this time
	Instance json.RawMessage `json:"instance"`
}

// saleStream streams ?sale=ID to the sale page as Server-Sent Events
// until the viewer leaves or the server shuts down (Deps.Closing): the
// server's Shutdown waits for handlers, and a stream never ends by itself.
func (h *handler) saleStream(w http.ResponseWriter, r *http.Request) {
	id, err := inventory.ParseSaleID(r.URL.Query().Get("sale"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// An unknown sale is a problem answer, not a stream: EventSource then
	// gives up instead of reconnecting forever.
	first, err := h.Sales.Sale(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rc := startStream(w)
	ev := h.event(first, nil)
	tick := time.NewTicker(streamEvery)
	defer tick.Stop()
	for {
		if err := h.sendEvent(rc, w, ev); err != nil {
			return // the viewer is gone or stalled
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.Closing:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(r.Context(), streamSaleQuery)
		v, err := h.Sales.Sale(ctx, id)
		cancel()
		ev = h.event(v, err)
	}
}

// event is the sale's view, or why it could not be read, with the
// instance's latest figures.
func (h *handler) event(v inventory.SaleView, err error) streamEvent {
	ev := streamEvent{Instance: json.RawMessage("null")}
	if h.Figures != nil {
		ev.Instance = h.Figures()
	}
	if err != nil {
		h.Log.Warn("sale page: reading the sale failed", "err", err)
		ev.Error = "the sale could not be read just now; retrying"
		return ev
	}
	s := toSaleJSON(v)
	ev.Sale = &s
	return ev
}

// sendEvent writes ev as one SSE message and flushes it.
func (h *handler) sendEvent(rc *http.ResponseController, w http.ResponseWriter, ev streamEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(b)+8)
	return h.send(w, rc, append(append(append(buf, "data: "...), b...), "\n\n"...))
}
