package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"flashsale/inventory"
	"flashsale/order"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// fakeStock answers every call with err and counts the calls that reached
// it. A fake is enough: what is tested is which outcomes count.
type fakeStock struct {
	err   error
	calls int
}

func (f *fakeStock) Reserve(context.Context, inventory.Reservation) (inventory.Reserved, error) {
	f.calls++
	return inventory.Reserved{}, f.err
}

func (f *fakeStock) Release(context.Context, inventory.SaleID, string, string, bool) (int, error) {
	f.calls++
	return 0, f.err
}

func (f *fakeStock) Discard(context.Context, inventory.SaleID, string, string) (int, error) {
	f.calls++
	return 0, f.err
}

func (f *fakeStock) Abandon(context.Context, inventory.Reservation) (int, error) {
	f.calls++
	return 0, f.err
}

func (f *fakeStock) Confirm(context.Context, inventory.SaleID, []inventory.BuyerKey) error {
	f.calls++
	return f.err
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newBreaker(open time.Duration) *Breaker {
	return New("redis", Settings{Failures: 3, Open: open, Probes: 1}, quiet)
}

// refused is a dial to a port where nothing listens, as the OS reports it.
var refused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want verdict
	}{
		{"nil", live, nil, success},
		{"sold out", live, inventory.ErrSoldOut, success},
		{"limit reached", live, fmt.Errorf("wrapped: %w", inventory.ErrLimitReached), success},
		{"rate limited", live, &ratelimit.Error{Limit: "buyer", RetryAfter: time.Second}, success},
		{"key claimed", live, inventory.ErrKeyClaimed, success},
		{"duplicate", live, order.ErrDuplicate, success},
		{"not found", live, order.ErrNotFound, success},
		{"key in use", live, order.ErrKeyInUse, success},
		{"commit expired", live, order.ErrCommitExpired, success},
		{"not transitable", live, order.ErrNotTransitable, success},
		{"domain answer to a client that left", gone, inventory.ErrSoldOut, success},
		{"dial refused", live, refused, failure},
		{"timeout", live, context.DeadlineExceeded, failure},
		{"commit unknown", live, fmt.Errorf("%w: EOF", order.ErrCommitUnknown), failure},
		{"certainly not committed", live, fmt.Errorf("%w: dial", order.ErrUnavailable), failure},
		{"client left", gone, context.Canceled, excluded},
		{"failure of a client that left", gone, refused, excluded},
	} {
		if got := classify(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDomainAnswersKeepTheBreakerClosed(t *testing.T) {
	b := newBreaker(time.Minute)
	f := &fakeStock{err: inventory.ErrSoldOut}
	s := Stock(f, b)
	for range 10 {
		if _, err := s.Reserve(context.Background(), inventory.Reservation{}); !errors.Is(err, inventory.ErrSoldOut) {
			t.Fatalf("reserve: %v, want the sold-out answer itself", err)
		}
	}
	if f.calls != 10 || b.Open() {
		t.Fatalf("%d calls reached Redis, open %v; want 10, closed", f.calls, b.Open())
	}
}

func TestFailuresOpenTheBreakerAndItRefusesAtOnce(t *testing.T) {
	b := newBreaker(time.Minute)
	f := &fakeStock{err: refused}
	s := Stock(f, b)
	for i := range 3 {
		_, err := s.Reserve(context.Background(), inventory.Reservation{})
		var ua *order.UnavailableError
		if !errors.Is(err, order.ErrUnavailable) || errors.As(err, &ua) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("failure %d: %v; want Redis's own error marked unavailable", i, err)
		}
	}
	if !b.Open() || b.Ready(context.Background()) == nil {
		t.Fatalf("3 consecutive failures left the breaker closed (ready: %v)", b.Ready(context.Background()))
	}
	_, err := s.Release(context.Background(), inventory.SaleID{}, "b", "k", true)
	var ua *order.UnavailableError
	if !errors.As(err, &ua) || ua.Dependency != "redis" || ua.RetryAfter <= 50*time.Second || ua.RetryAfter > time.Minute {
		t.Fatalf("open breaker answered %v (%+v); want UnavailableError naming redis, retry within the open minute", err, ua)
	}
	if f.calls != 3 {
		t.Fatalf("%d calls reached Redis; the open breaker let one through", f.calls)
	}
}

func TestClientsThatLeftDoNotOpenIt(t *testing.T) {
	b := newBreaker(time.Minute)
	f := &fakeStock{err: context.Canceled}
	s := Stock(f, b)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range 10 {
		if _, err := s.Reserve(gone, inventory.Reservation{}); !errors.Is(err, context.Canceled) || errors.Is(err, order.ErrUnavailable) {
			t.Fatalf("reserve: %v; want the cancellation as it is", err)
		}
	}
	if b.Open() {
		t.Fatal("cancelled calls opened the breaker")
	}
}

func TestAProbeClosesItAgain(t *testing.T) {
	b := newBreaker(50 * time.Millisecond)
	f := &fakeStock{err: refused}
	s := Stock(f, b)
	for range 3 {
		_, _ = s.Reserve(context.Background(), inventory.Reservation{})
	}
	if !b.Open() {
		t.Fatal("not open")
	}
	time.Sleep(100 * time.Millisecond)
	f.err = nil
	if _, err := s.Reserve(context.Background(), inventory.Reservation{}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if b.Open() || b.Ready(context.Background()) != nil || f.calls != 4 {
		t.Fatalf("after a successful probe: open %v, %d calls", b.Open(), f.calls)
	}
}

// fakeStore fails Create with err for the buyers in down.
type fakeStore struct {
	order.Store
	down  map[string]bool
	err   error
	calls int
}

func (f *fakeStore) Create(_ context.Context, o order.NewOrder) (order.Order, error) {
	f.calls++
	if f.down[o.Buyer.String()] {
		return order.Order{}, f.err
	}
	return order.Order{}, nil
}

func TestStoreBreakersFollowTheBuyersDatabase(t *testing.T) {
	m, err := shard.NewMap(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	onDB := map[int]order.BuyerID{}
	for i := 0; len(onDB) < 2; i++ {
		b, _ := order.ParseBuyerID(fmt.Sprint("buyer-", i))
		onDB[m.Database(m.ForUser(b.String()))] = b
	}
	dbs := []*Breaker{New("postgres[0]", Settings{Failures: 3, Open: time.Minute}, quiet),
		New("postgres[1]", Settings{Failures: 3, Open: time.Minute}, quiet)}
	f := &fakeStore{down: map[string]bool{onDB[1].String(): true}, err: fmt.Errorf("%w: connection refused", order.ErrUnavailable)}
	s := Store(f, m, dbs)
	for range 5 {
		_, _ = s.Create(context.Background(), order.NewOrder{Buyer: onDB[1]})
	}
	if !dbs[1].Open() || dbs[0].Open() {
		t.Fatalf("open: postgres[0] %v, postgres[1] %v; want only the failing database's", dbs[0].Open(), dbs[1].Open())
	}
	if _, err := s.Create(context.Background(), order.NewOrder{Buyer: onDB[0]}); err != nil {
		t.Fatalf("a buyer on the working database: %v", err)
	}
	if f.calls != 4 {
		t.Fatalf("%d calls reached the store; want 3 failures and the working database's order", f.calls)
	}
}

func TestOneFailedBatchDoesNotOpenIt(t *testing.T) {
	b := New("redis", Settings{Failures: 3, Spread: 50 * time.Millisecond, Open: time.Minute, Probes: 1}, quiet)
	f := &fakeStock{err: refused}
	s := Stock(f, b)
	fail := func(n int) {
		for range n {
			_, _ = s.Reserve(context.Background(), inventory.Reservation{})
		}
	}
	fail(10) // one round trip's worth of reservations, failed at once
	if b.Open() {
		t.Fatal("failures of one instant opened the breaker")
	}
	f.err = nil
	fail(1)
	time.Sleep(60 * time.Millisecond)
	f.err = refused
	fail(1)
	if b.Open() {
		t.Fatal("a success did not end the run of failures")
	}
	fail(10)
	time.Sleep(60 * time.Millisecond)
	fail(1)
	if !b.Open() {
		t.Fatal("failures spread over the spread left the breaker closed")
	}
}
