package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flashsale/inventory"
	"flashsale/ledger"
	"flashsale/order"
)

// timer records operations by name and outcome.
type timer struct {
	h       *prometheus.HistogramVec
	outcome func(error) string
}

func (m *Metrics) newTimer(name, help string) timer {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help,
		Buckets: latencyBuckets}, []string{"op", "outcome"})
	m.reg.MustRegister(h)
	return timer{h, m.outcome}
}

// timed runs f as op and records how long it took and how it ended.
func timed[T any](t timer, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	t.h.WithLabelValues(op, t.outcome(err)).Observe(time.Since(start).Seconds())
	return v, err
}

// Store wraps an order store: every call is timed, by operation and
// outcome (flashsale_store_seconds).
func (m *Metrics) Store(inner order.Store) order.Store {
	return &store{inner: inner, t: m.newTimer("store_seconds", "Order store calls by operation and outcome; create includes the wait for its group commit.")}
}

type store struct {
	inner order.Store
	t     timer
}

func (s *store) Create(ctx context.Context, o order.NewOrder) (order.Order, error) {
	return timed(s.t, "create", func() (order.Order, error) { return s.inner.Create(ctx, o) })
}

func (s *store) ByKey(ctx context.Context, buyer order.BuyerID, key order.IdemKey) (order.Order, error) {
	return timed(s.t, "by_key", func() (order.Order, error) { return s.inner.ByKey(ctx, buyer, key) })
}

func (s *store) Get(ctx context.Context, id order.ID) (order.Order, error) {
	return timed(s.t, "get", func() (order.Order, error) { return s.inner.Get(ctx, id) })
}

func (s *store) List(ctx context.Context, buyer order.BuyerID, before *order.ID, limit int) (order.Page, error) {
	return timed(s.t, "list", func() (order.Page, error) { return s.inner.List(ctx, buyer, before, limit) })
}

func (s *store) Pay(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return timed(s.t, "pay", func() (order.Order, error) { return s.inner.Pay(ctx, buyer, id) })
}

func (s *store) Cancel(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return timed(s.t, "cancel", func() (order.Order, error) { return s.inner.Cancel(ctx, buyer, id) })
}

// Stock wraps the buy path's stock: reservations and releases are timed
// by outcome (flashsale_stock_seconds), so sold-out, limit and rate-limit
// refusals from Redis show as their own series.
func (m *Metrics) Stock(inner order.Stock) order.Stock {
	return &stock{inner: inner, t: m.newTimer("stock_seconds", "Redis stock calls of the buy path by operation and outcome; reserve includes the wait for its batch.")}
}

type stock struct {
	inner order.Stock
	t     timer
}

func (s *stock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	return timed(s.t, "reserve", func() (inventory.Reserved, error) { return s.inner.Reserve(ctx, r) })
}

func (s *stock) Release(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool) (int, error) {
	return timed(s.t, "release", func() (int, error) { return s.inner.Release(ctx, sale, buyer, key, forget) })
}

func (s *stock) Discard(ctx context.Context, sale inventory.SaleID, buyer, key string) (int, error) {
	return timed(s.t, "discard", func() (int, error) { return s.inner.Discard(ctx, sale, buyer, key) })
}

func (s *stock) Abandon(ctx context.Context, r inventory.Reservation) (int, error) {
	return timed(s.t, "abandon", func() (int, error) { return s.inner.Abandon(ctx, r) })
}

func (s *stock) Confirm(ctx context.Context, sale inventory.SaleID, keys []inventory.BuyerKey) error {
	_, err := timed(s.t, "confirm", func() (struct{}, error) { return struct{}{}, s.inner.Confirm(ctx, sale, keys) })
	return err
}

// SoldOut wraps the instance's sold-out memory: answers it gave without a
// network call, and the sales it marked and reopened, are counted.
func (m *Metrics) SoldOut(inner order.SoldOut) order.SoldOut {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sold_out_memory_total",
		Help: "The sold-out memory of the buy path: hits (sold-out answers without a network call), marks and reopens."}, []string{"event"})
	m.reg.MustRegister(c)
	return &soldOut{inner: inner, hits: c.WithLabelValues("hit"), marks: c.WithLabelValues("mark"), reopens: c.WithLabelValues("reopen")}
}

type soldOut struct {
	inner                order.SoldOut
	hits, marks, reopens prometheus.Counter
}

func (s *soldOut) Check(id inventory.SaleID, buyer, key string) inventory.Verdict {
	v := s.inner.Check(id, buyer, key)
	if v == inventory.VerdictGone || v == inventory.VerdictHeld {
		s.hits.Inc()
	}
	return v
}

func (s *soldOut) Mark(ctx context.Context, id inventory.SaleID) {
	s.inner.Mark(ctx, id)
	s.marks.Inc()
}

func (s *soldOut) Reopen(id inventory.SaleID) {
	s.inner.Reopen(id)
	s.reopens.Inc()
}

// Oversold wraps what the inventory ledger calls when it finds orders
// beyond a sale's stock. PostgreSQL's allotments refuse such orders before
// they commit, so this last net should never fire: its counter,
// flashsale_oversold_cancelled_total, is one to alert on.
func (m *Metrics) Oversold(inner ledger.OversoldCanceller) ledger.OversoldCanceller {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "oversold_cancelled_total",
		Help: "Orders the inventory ledger cancelled as sold beyond their sale's stock; should stay 0."})
	m.reg.MustRegister(c)
	return &oversold{inner: inner, cancelled: c}
}

type oversold struct {
	inner     ledger.OversoldCanceller
	cancelled prometheus.Counter
}

func (o *oversold) CancelOversold(ctx context.Context, orderIDs []int64) error {
	err := o.inner.CancelOversold(ctx, orderIDs)
	if err == nil {
		o.cancelled.Add(float64(len(orderIDs)))
	}
	return err
}
