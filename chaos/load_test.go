package chaos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// scripted answers each key's attempts from a fixed list, the last one
// for ever after, and records the keys and bodies it saw.
type scripted struct {
	mu    sync.Mutex
	tries map[string]int
	plan  []func(w http.ResponseWriter)
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	n := s.tries[key]
	s.tries[key]++
	s.mu.Unlock()
	s.plan[min(n, len(s.plan)-1)](w)
}

func problem(status int, slug string, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/problem+json")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"https://flashsale.example/problems/%s","title":"x","status":%d}`, slug, status)
	}
}

func runLoad(t *testing.T, plan ...func(http.ResponseWriter)) ([]Buyer, *scripted) {
	t.Helper()
	s := &scripted{tries: map[string]int{}, plan: plan}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	l := Load{Targets: []string{srv.URL}, SaleID: "7", Buyers: 3, Rate: 1000, Workers: 2,
		ClientTimeout: 200 * time.Millisecond, Budget: 5 * time.Second, RunID: "r",
		Token: func(u string) (string, error) { return "tok-" + u, nil }}
	buyers, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return buyers, s
}

// A buyer retries a 503, an in-use key and a sold-out with Retry-After,
// with its one key, and stops at the 201.
func TestLoadRetriesWithTheSameKeyUntilDefinite(t *testing.T) {
	buyers, s := runLoad(t,
		problem(503, "overloaded", ""),
		problem(409, "idempotency-key-in-use", ""),
		problem(409, "sold-out", "1"),
		func(w http.ResponseWriter) {
			w.Header().Set("Location", "/v1/orders/42")
			w.WriteHeader(201)
			fmt.Fprint(w, `{"id":"42","status":"pending_payment"}`)
		},
		problem(500, "internal-error", ""), // never reached
	)
	for _, b := range buyers {
		if len(b.Answers) != 4 || !b.Resolved() || b.Last().OrderID != 42 {
			t.Fatalf("%s: %+v", b.User, b.Answers)
		}
		if a := b.Answers[2]; a.Problem != "sold-out" || a.RetryAfter != time.Second || !a.IsProblem {
			t.Fatalf("sold-out answer read as %+v", a)
		}
		if s.tries[b.Key] != 4 {
			t.Fatalf("key %s tried %d times, want 4", b.Key, s.tries[b.Key])
		}
	}
}

// A sold-out without Retry-After is final; a timeout is recorded as one.
func TestLoadStopsAtFinalSoldOutAndRecordsTimeouts(t *testing.T) {
	slow := func(w http.ResponseWriter) { time.Sleep(400 * time.Millisecond) }
	buyers, _ := runLoad(t, slow, problem(409, "sold-out", ""))
	for _, b := range buyers {
		if len(b.Answers) != 2 || !b.Answers[0].TimedOut || WellFormed(b.Answers[0]) || Classify(b.Last()) != Final {
			t.Fatalf("%s: %+v", b.User, b.Answers)
		}
	}
}
