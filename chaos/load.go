package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Load is the buyers' side of a scenario: Buyers arrive at Rate per
// second; each sends one order with a fixed key and retries it with the
// same key until a definite answer or its Budget is spent.
type Load struct {
	Targets       []string // base URLs of the serve instances
	SaleID        string
	Buyers        int
	Rate          float64       // arrivals per second
	Workers       int           // requests in flight at most
	ClientTimeout time.Duration // per attempt
	Budget        time.Duration // per buyer, from its first attempt
	Token         func(user string) (string, error)
	RunID         string
}

// Run drives the sale and returns every buyer's record.
func (l Load) Run(ctx context.Context) ([]Buyer, error) {
	tr := &http.Transport{MaxIdleConns: 2 * l.Workers, MaxIdleConnsPerHost: l.Workers,
		IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sem := make(chan struct{}, l.Workers)
	out := make([]Buyer, l.Buyers)
	body := fmt.Appendf(nil, `{"sale_id":%q,"quantity":1}`, l.SaleID)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range l.Buyers {
		at := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
		if err := sleepUntil(ctx, at); err != nil {
			break
		}
		user := fmt.Sprintf("buyer-%05d", i)
		tok, err := l.Token(user)
		if err != nil {
			return nil, err
		}
		out[i] = Buyer{User: user, Key: l.RunID + "-" + user}
		wg.Go(func() { l.buy(ctx, c, sem, &out[i], i, tok, body) })
	}
	wg.Wait()
	return out, ctx.Err()
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// buy is one buyer: attempts go round the instances, as a load balancer
// would send retries elsewhere.
func (l Load) buy(ctx context.Context, c *http.Client, sem chan struct{}, b *Buyer, i int, tok string, body []byte) {
	deadline := time.Now().Add(l.Budget)
	for attempt := 0; ; attempt++ {
		target := (i + attempt) % len(l.Targets)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		a := l.attempt(ctx, c, target, tok, b.Key, body)
		<-sem
		b.Answers = append(b.Answers, a)
		if Classify(a) != Retry || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		if sleepUntil(ctx, time.Now().Add(backoff(a))) != nil {
			return
		}
	}
}

// backoff honours Retry-After (capped so that a buyer keeps trying within
// its budget), else waits 100-300 ms.
func backoff(a Answer) time.Duration {
	if a.RetryAfter > 0 {
		return min(a.RetryAfter, 2*time.Second)
	}
	return 100*time.Millisecond + rand.N(200*time.Millisecond)
}

// attempt sends one order request and records the answer.
func (l Load) attempt(ctx context.Context, c *http.Client, target int, tok, key string, body []byte) Answer {
	a := Answer{Target: target, Start: time.Now()}
	rctx, cancel := context.WithTimeout(ctx, l.ClientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, l.Targets[target]+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		a.Err = err.Error()
		return a
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.Do(req)
	if err == nil {
		err = readAnswer(resp, &a)
	}
	a.Latency = time.Since(a.Start)
	if err != nil {
		a.Status = 0
		a.TimedOut = errors.Is(err, context.DeadlineExceeded) || errors.Is(rctx.Err(), context.DeadlineExceeded)
		a.Err = shortErr(err)
	}
	return a
}

// readAnswer reads status, problem type, Retry-After and the order id.
func readAnswer(resp *http.Response, a *Answer) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	a.Status = resp.StatusCode
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		a.RetryAfter = time.Duration(s) * time.Second
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Type string `json:"type"`
		}
		a.IsProblem = json.Unmarshal(b, &p) == nil && p.Type != ""
		a.Problem = problemSlug(p.Type)
	}
	if a.Status == http.StatusCreated {
		var o struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &o) != nil {
			return fmt.Errorf("201 with an unreadable body %.80q", b)
		}
		if a.OrderID, err = strconv.ParseInt(o.ID, 10, 64); err != nil {
			return fmt.Errorf("201 with order id %q", o.ID)
		}
	}
	return nil
}

// shortErr names a transport error by its kind, so that breach lines group.
func shortErr(err error) string {
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "EOF", "deadline exceeded", "broken pipe"} {
		if strings.Contains(s, k) {
			return strings.ReplaceAll(k, " ", "-")
		}
	}
	return s
}
