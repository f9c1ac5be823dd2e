package testenv

import (
	"encoding/json"
	"strconv"
	"time"

	"flashsale/consumer/inbox"
	"flashsale/inventory"
)

// OrderEvent is an order event of the contract in docs/events.md, of type
// flashsale.order.<typ>, with a fresh event id; reason is left out when
// empty.
func OrderEvent(typ string, order int64, sale inventory.SaleID, qty int, reason string) inbox.Event {
	d := map[string]any{"schema_version": 1, "order_id": strconv.FormatInt(order, 10), "sale_id": sale.String(),
		"user_id": "alice", "quantity": qty, "amount_cents": 100 * qty, "currency": "EUR", "status": "pending_payment"}
	if reason != "" {
		d["reason"] = reason
	}
	data, _ := json.Marshal(d)
	return inbox.Event{ID: EventID(), Source: "/flashsale/shards/0", Type: "flashsale.order." + typ,
		Subject: strconv.FormatInt(order, 10), Time: time.Now().UTC(), Data: data}
}
