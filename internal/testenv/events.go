package testenv

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"flashsale/consumer/inbox"
)

// OrderEvent is an order event of the contract in docs/events.md, of type
// flashsale.order.<typ>, with a fresh event id; reason is left out when
// empty. The sale is any value that prints as its id (an inventory.SaleID
// in practice): testenv stays free of the domain packages.
func OrderEvent(typ string, order int64, sale fmt.Stringer, qty int, reason string) inbox.Event {
	d := map[string]any{"schema_version": 1, "order_id": strconv.FormatInt(order, 10), "sale_id": sale.String(),
		"user_id": "alice", "quantity": qty, "amount_cents": 100 * qty, "currency": "EUR", "status": "pending_payment"}
	if reason != "" {
		d["reason"] = reason
	}
	data, _ := json.Marshal(d)
	return inbox.Event{ID: EventID(), Source: "/flashsale/shards/0", Type: "flashsale.order." + typ,
		Subject: strconv.FormatInt(order, 10), Time: time.Now().UTC(), Data: data}
}
