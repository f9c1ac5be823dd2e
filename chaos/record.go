// Package chaos is the fault suite behind `make chaos`: it runs a flash sale
// over HTTP against real serve processes on a private stack instance,
// injects one fault per scenario with real signals (SIGKILL, SIGSTOP, an
// immediate PostgreSQL stop, a Redis rollback), recovers, and then checks
// PostgreSQL, Redis, Kafka and the client's record against the invariants
// of issue 11.
package chaos

import (
	"strings"
	"time"
)

// Answer is one HTTP attempt of a buyer, as the client saw it.
type Answer struct {
	Target     int           // index of the serve instance asked
	Start      time.Time     // when the request was sent
	Latency    time.Duration // until the answer (or the error)
	Status     int           // 0: no HTTP answer at all
	Problem    string        // last path segment of a problem+json type
	IsProblem  bool          // the body was application/problem+json
	RetryAfter time.Duration // the Retry-After header, 0 when absent
	OrderID    int64         // the id of a 201's order
	TimedOut   bool          // no answer within the client timeout
	Err        string        // transport error, if any
}

// Verdict is what a buyer does with an answer.
type Verdict int

// The verdicts: an order, a final refusal, or try again with the same key.
const (
	Created Verdict = iota
	Final
	Retry
)

// Classify says whether a buyer stops at this answer. A sold-out that
// carries Retry-After is retryable: units are only held by commits still
// pending; without it, sold-out is final.
func Classify(a Answer) Verdict {
	switch {
	case a.Status == 201:
		return Created
	case a.Status == 0, a.Status == 429, a.Status >= 500:
		return Retry
	case a.Status == 409 && a.Problem == "idempotency-key-in-use":
		return Retry
	case a.Status == 409 && a.Problem == "sold-out" && a.RetryAfter > 0:
		return Retry
	}
	return Final
}

// WellFormed reports whether an answer is a definite status or a
// problem+json body: what every answer must be, even during a fault.
func WellFormed(a Answer) bool {
	if a.Status == 0 || a.TimedOut {
		return false
	}
	return a.Status < 400 || a.IsProblem
}

// problemSlug is the last path segment of a problem type URI.
func problemSlug(typ string) string {
	return typ[strings.LastIndex(typ, "/")+1:]
}

// Buyer is everything one buyer did: a fixed key, and every attempt.
type Buyer struct {
	User    string
	Key     string
	Answers []Answer
}

// Last is the buyer's last answer (zero when it never sent one).
func (b Buyer) Last() Answer {
	if len(b.Answers) == 0 {
		return Answer{}
	}
	return b.Answers[len(b.Answers)-1]
}

// Resolved reports whether the buyer got a definite answer.
func (b Buyer) Resolved() bool {
	return len(b.Answers) > 0 && Classify(b.Last()) != Retry
}

// Window is a span during which the suite itself made an instance
// unreachable (killed or stopped): a request to it that overlaps the span
// may fail without an answer, and that is not the service's fault.
type Window struct {
	Target   int
	From, To time.Time
}

// excused reports whether a's failure falls in a window on its target.
func excused(a Answer, ws []Window) bool {
	end := a.Start.Add(a.Latency)
	for _, w := range ws {
		if w.Target == a.Target && !a.Start.After(w.To) && !end.Before(w.From) {
			return true
		}
	}
	return false
}
