package ledger

import (
	"encoding/json"
	"strings"

	"flashsale/consumer/inbox"
	"flashsale/internal/jsonscan"
	"flashsale/order"
)

// payload is what the ledger reads of an order event's v1 data: three
// fields of order.EventV1 and order.CancelledV1's reason, under the same
// JSON names (TestPayloadReadsOrderEventFields holds them together).
// Decoding the whole order.EventV1 parsed two timestamps and allocated
// four strings per event that the ledger never reads.
type payload struct {
	OrderID  string `json:"order_id"`
	SaleID   string `json:"sale_id"`
	Quantity int    `json:"quantity"`
	Reason   string `json:"reason"`
}

// decodeData reads an order event's v1 payload; reason is nil unless the
// event is a cancellation that gives one.
func decodeData(ev inbox.Event) (d payload, reason *string, err error) {
	d, ok := decodeFast(ev.Data)
	if !ok {
		d, err = payload{}, json.Unmarshal(ev.Data, &d)
	}
	if err == nil && ev.Type == order.EventCancelled && d.Reason != "" {
		reason = &d.Reason
	}
	return d, reason, err
}

// decodeFast reads the payload as json.Unmarshal does, without reflection,
// from the data the order package writes: an object whose ledger fields
// are plain ASCII strings and a small integer, the others skipped. Any
// other shape, and a key that json.Unmarshal would match to a field only
// by ignoring case, is left to json.Unmarshal. The data is valid JSON:
// inbox.Parse checked it. Decoding went through reflection for a third of
// the ledger consumer's CPU in make bench.
func decodeFast(b []byte) (d payload, ok bool) {
	s := jsonscan.Scanner{B: b}
	if !s.Byte('{') {
		return d, false
	}
	for first := true; !s.Byte('}'); first = false {
		if !first && !s.Byte(',') {
			return d, false
		}
		key, ok := s.Raw()
		if !ok || !s.Byte(':') || !d.set(&s, string(key)) {
			return d, false
		}
	}
	return d, s.End()
}

// set reads the value of key into d, or skips it.
func (d *payload) set(s *jsonscan.Scanner, key string) (ok bool) {
	switch key {
	case "order_id":
		d.OrderID, ok = s.Str()
	case "sale_id":
		d.SaleID, ok = s.Str()
	case "reason":
		d.Reason, ok = s.Str()
	case "quantity":
		var n int64
		n, ok = s.Int()
		d.Quantity = int(n)
	default:
		for _, f := range [...]string{"order_id", "sale_id", "reason", "quantity"} {
			if strings.EqualFold(key, f) {
				return false
			}
		}
		ok = s.Skip()
	}
	return ok
}
