package order

import "time"

// The order event types, the CloudEvents type of each outbox row an order
// change writes (docs/events.md). The statements in sql/ that write them
// (order_create, order_pay, order_cancel, order_cancel_oversold,
// order_expire) carry them as literals, so that the group commit's
// statement takes no extra parameter; TestSQLEventTypesAreGoConstants
// holds each literal to one of these.
const (
	EventCreated   = "flashsale.order.created"
	EventPaid      = "flashsale.order.paid"
	EventCancelled = "flashsale.order.cancelled"
	EventExpired   = "flashsale.order.expired"
)

// EventTypes lists every order event type, in lifecycle order.
var EventTypes = []string{EventCreated, EventPaid, EventCancelled, EventExpired}

// The reasons an OrderCancelled event gives.
const (
	ReasonBuyer    = "buyer"    // the buyer cancelled while pending
	ReasonOversold = "oversold" // the inventory ledger found the order beyond its sale's stock
)

// SchemaVersion is the schema_version of the payloads below; it grows only
// with incompatible changes.
const SchemaVersion = 1

// EventV1 is the data every v1 order event carries: the order as the
// change left it. The SQL function order_event_payload (migrations/shard)
// builds it, and TestEventPayloadsMatchSQL holds the two field for field.
// Readers must ignore fields they do not know: new ones may appear in any
// version.
type EventV1 struct {
	SchemaVersion int       `json:"schema_version"`
	OrderID       string    `json:"order_id"` // decimal, as the event's subject and Kafka key
	SaleID        string    `json:"sale_id"`  // decimal
	UserID        string    `json:"user_id"`
	Quantity      int       `json:"quantity"`
	AmountCents   int64     `json:"amount_cents"`
	Currency      string    `json:"currency"`
	Status        Status    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// CreatedV1 is the data of flashsale.order.created (status pending_payment).
type CreatedV1 struct{ EventV1 }

// PaidV1 is the data of flashsale.order.paid (status paid).
type PaidV1 struct{ EventV1 }

// CancelledV1 is the data of flashsale.order.cancelled (status cancelled),
// with why: ReasonBuyer or ReasonOversold.
type CancelledV1 struct {
	EventV1
	Reason string `json:"reason"`
}

// ExpiredV1 is the data of flashsale.order.expired (status expired).
type ExpiredV1 struct{ EventV1 }

// NewPayloadV1 returns a pointer to a zero v1 payload of the event type
// typ, to decode its data into; ok is false for a type that is no order
// event.
func NewPayloadV1(typ string) (payload any, ok bool) {
	switch typ {
	case EventCreated:
		return &CreatedV1{}, true
	case EventPaid:
		return &PaidV1{}, true
	case EventCancelled:
		return &CancelledV1{}, true
	case EventExpired:
		return &ExpiredV1{}, true
	}
	return nil, false
}
