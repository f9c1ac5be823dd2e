package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"flashsale/inventory"
	"flashsale/live"
	"flashsale/order"
)

// heartbeat is how often an idle stream sends a comment, so that proxies
// and clients see it alive and a vanished client is noticed by the write.
const heartbeat = 15 * time.Second

// streamRetry is the reconnection delay a client's EventSource is told.
const streamRetry = "retry: 2000\n\n"

// OrderEvent is the event that tells an order's subscribers its state: the
// order as GET /v1/orders/{id} answers it, with its status as the event id
// (a status is reached at most once, so a reconnecting client's
// Last-Event-ID says whether it has seen the current one).
func OrderEvent(o order.Order) *live.Event {
	data, _ := json.Marshal(toOrderJSON(o))
	return live.NewEvent(live.OrderTopic(o.ID.String()), "order", string(o.Status), data)
}

// saleEvent is the sale as GET /v1/sales/{id} answers it, identified by
// its content.
func saleEvent(v inventory.SaleView) *live.Event {
	data, _ := json.Marshal(toSaleJSON(v))
	return live.NewEvent(live.SaleTopic(v.ID.String()), "sale", live.ContentID(data), data)
}

// orderEvents streams the buyer's order: its state now, then each
// transition, until the client leaves or the server shuts down. Another
// buyer's order is 404, as for GET.
func (h *handler) orderEvents(w http.ResponseWriter, r *http.Request) {
	buyer, id, err := orderRef(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Subscribe before reading: a transition between the two is then
	// delivered rather than lost.
	sub, err := h.Live.Subscribe(live.OrderTopic(id.String()), nil)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer sub.Close()
	o, err := h.Orders.Get(r.Context(), buyer, id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.stream(w, r, sub, OrderEvent(o), orderStale)
}

// orderStale skips what the client has, and anything after a final
// status: transitions made on different instances may arrive out of
// order, and a closed order never changes again.
func orderStale(last, ev *live.Event) bool {
	return ev.ID == last.ID || order.Status(last.ID) != order.StatusPendingPayment
}

// saleEvents streams a sale's stock and state: now, then whenever it
// changed, at most every poll interval. Public, like GET /v1/sales/{id}.
func (h *handler) saleEvents(w http.ResponseWriter, r *http.Request) {
	v, err := h.pathSale(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	id := v.ID
	sub, err := h.Live.Subscribe(live.SaleTopic(id.String()), func(ctx context.Context) (*live.Event, error) {
		v, err := h.Sales.Sale(ctx, id)
		if err != nil {
			return nil, err
		}
		return saleEvent(v), nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer sub.Close()
	h.stream(w, r, sub, saleEvent(v), func(last, ev *live.Event) bool { return ev.ID == last.ID })
}

// stream writes first (unless the client's Last-Event-ID is its id) and
// then sub's events that stale does not skip, each flushed, until the
// client leaves, the write times out, or the hub drops or closes sub.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, sub *live.Sub, first *live.Event,
	stale func(last, ev *live.Event) bool) {
	rc := startStream(w)
	frame := []byte(streamRetry)
	if r.Header.Get("Last-Event-ID") != first.ID {
		frame = append(frame, first.Frame()...)
	}
	if h.send(w, rc, frame) != nil {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	last := first
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			if stale(last, ev) {
				continue
			}
			last, err = ev, h.send(w, rc, ev.Frame())
		case <-beat.C:
			err = h.send(w, rc, []byte(": heartbeat\n\n"))
		}
		if err != nil {
			return
		}
	}
}

// startStream answers 200 with an event stream that neither caches nor
// proxies hold back. The server's ReadTimeout would end the stream's
// context: the request has been read, only the client's hanging up
// matters now.
func startStream(w http.ResponseWriter) *http.ResponseController {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr["Cache-Control"] = noStore
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return rc
}

// send writes and flushes one frame within the stream write timeout, which
// replaces the server's WriteTimeout (that one would end every stream): a
// client that reads nothing for that long is dropped.
func (h *handler) send(w http.ResponseWriter, rc *http.ResponseController, frame []byte) error {
	_ = rc.SetWriteDeadline(time.Now().Add(h.StreamWriteTimeout))
	if _, err := w.Write(frame); err != nil {
		return err
	}
	return rc.Flush()
}

// tokenFromQuery lets a browser's EventSource, which cannot set headers,
// send its bearer token as ?access_token= on the stream routes (RFC 6750
// §2.3). A header, when present, wins.
func tokenFromQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("access_token"); tok != "" && r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		next.ServeHTTP(w, r)
	})
}
