package live_test

import (
	"context"
	"testing"

	"flashsale/live"
	"flashsale/order"
)

// fakeOrders answers every write with an order of the status the write
// leads to; an in-memory stand-in, since what is tested is which writes
// the decorator tells of.
type fakeOrders struct{ order.Store }

func (fakeOrders) Create(context.Context, order.NewOrder) (order.Order, error) {
	return order.Order{Status: order.StatusPendingPayment}, nil
}

func (fakeOrders) Pay(context.Context, order.BuyerID, order.ID) (order.Order, error) {
	return order.Order{Status: order.StatusPaid}, nil
}

func (fakeOrders) Cancel(context.Context, order.BuyerID, order.ID) (order.Order, error) {
	return order.Order{Status: order.StatusCancelled}, nil
}

// TestOrderStoreTellsTransitionsNotCreations: payments and cancellations
// reach the streams; a creation does not, since no stream can watch an
// order before its 201 and a stream starts with the current state.
func TestOrderStoreTellsTransitionsNotCreations(t *testing.T) {
	var told []order.Status
	s := live.OrderStore(fakeOrders{}, func(o order.Order) { told = append(told, o.Status) })
	ctx := context.Background()
	var buyer order.BuyerID
	var id order.ID
	if _, err := s.Create(ctx, order.NewOrder{}); err != nil {
		t.Fatal(err)
	}
	if len(told) != 0 {
		t.Fatalf("a creation was told: %v", told)
	}
	if _, err := s.Pay(ctx, buyer, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, buyer, id); err != nil {
		t.Fatal(err)
	}
	if want := []order.Status{order.StatusPaid, order.StatusCancelled}; len(told) != 2 || told[0] != want[0] || told[1] != want[1] {
		t.Fatalf("told %v, want %v", told, want)
	}
}
