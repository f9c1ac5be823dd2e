package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Client sends order requests like a real buyer's client: keep-alive
// connections, a timeout per attempt, and bounded retries with the same
// Idempotency-Key after a timeout, a connection error, a 5xx or a 409
// idempotency-key-in-use (an earlier attempt still running).
type Client struct {
	tr       transport
	retries  int
	backoff  time.Duration // first wait between attempts; doubles
	retryCap time.Duration // longest wait, Retry-After included
	stats    *AttemptStats
}

// ClientOptions tune the client.
type ClientOptions struct {
	URL      string // full URL of the buy endpoint
	Body     []byte // the JSON body every request sends
	Conns    int    // keep-alive connections at most (MaxConnsPerHost)
	Timeout  time.Duration
	Retries  int
	Backoff  time.Duration
	RetryCap time.Duration
	Std      bool // net/http instead of the lean HTTP/1.1 client
}

// answer is one HTTP response, as much of it as the client reads.
type answer struct {
	code       int
	retryAfter time.Duration
	replayed   bool
	body       []byte
}

// transport sends one attempt; buf receives the body.
type transport interface {
	do(auth, key string, buf []byte) (answer, error)
	close()
}

// NewClient returns a client with its own connections.
func NewClient(o ClientOptions) *Client {
	var tr transport
	if o.Std {
		tr = newStdTransport(o)
	} else {
		tr = newRawTransport(o)
	}
	return &Client{tr: tr, retries: o.Retries, backoff: o.Backoff, retryCap: o.RetryCap, stats: &AttemptStats{}}
}

// Close drops the idle connections.
func (c *Client) Close() { c.tr.close() }

// stdTransport is net/http with a tuned Transport: what most Go clients
// use, and about four times the CPU per request of rawTransport.
type stdTransport struct {
	http *http.Client
	url  string
	body []byte
}

func newStdTransport(o ClientOptions) *stdTransport {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Conns,
		MaxIdleConnsPerHost: o.Conns,
		MaxConnsPerHost:     o.Conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     4 << 10,
		ReadBufferSize:      4 << 10,
	}
	return &stdTransport{http: &http.Client{Transport: tr, Timeout: o.Timeout}, url: o.URL, body: o.Body}
}

func (t *stdTransport) close() { t.http.CloseIdleConnections() }

func (t *stdTransport) do(auth, key string, buf []byte) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(t.body))
	if err != nil {
		return answer{}, err
	}
	req.Header = http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}, "Idempotency-Key": {key}}
	resp, err := t.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	n, _ := io.ReadFull(resp.Body, buf)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return answer{code: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After")),
		replayed: resp.Header.Get("Idempotent-Replayed") == "true", body: buf[:n]}, nil
}

// AttemptStats count every attempt by answer.
type AttemptStats struct {
	Status    [600]atomic.Int64
	Timeouts  atomic.Int64
	ConnErrs  atomic.Int64
	Retries   atomic.Int64
	Replayed  atomic.Int64 // 201 with Idempotent-Replayed: true
	Attempts  atomic.Int64
	Recovered atomic.Int64 // logical requests that met a retryable failure and then got a final answer
}

// Result is the final answer to one logical request.
type Result struct {
	Outcome  Outcome
	OrderID  string // of a 201
	Attempts int
	Replayed bool
	Sent     time.Time // first attempt
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// Buy places one logical order request: auth is the whole Authorization
// header value, key the Idempotency-Key all its attempts share.
func (c *Client) Buy(ctx context.Context, auth, key string) Result {
	res := Result{Sent: time.Now()}
	hadFailure := false
	for attempt := 0; ; attempt++ {
		res.Attempts++
		c.stats.Attempts.Add(1)
		out, retry, wait, id, replayed := c.attempt(ctx, auth, key)
		if !retry || attempt >= c.retries || ctx.Err() != nil {
			res.Outcome, res.OrderID, res.Replayed = out, id, replayed
			if hadFailure && !out.unresolved5xx() {
				c.stats.Recovered.Add(1)
			}
			return res
		}
		hadFailure = true
		c.stats.Retries.Add(1)
		if wait <= 0 {
			wait = c.backoff << attempt
		}
		wait = min(wait, c.retryCap)
		wait = wait/2 + rand.N(wait/2+1) // jitter, so retries do not arrive in lockstep
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// attempt sends one request and classifies the answer.
func (c *Client) attempt(_ context.Context, auth, key string) (out Outcome, retry bool, wait time.Duration, orderID string, replayed bool) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	a, err := c.tr.do(auth, key, *bp)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			c.stats.Timeouts.Add(1)
		} else {
			c.stats.ConnErrs.Add(1)
		}
		return OutTransport, true, 0, "", false
	}
	code, body := a.code, a.body
	if code > 0 && code < len(c.stats.Status) {
		c.stats.Status[code].Add(1)
	}
	switch {
	case code == http.StatusCreated:
		if a.replayed {
			c.stats.Replayed.Add(1)
		}
		return OutCreated, false, 0, jsonString(body, `"id":"`), a.replayed
	case code >= 200 && code < 300:
		return OutOK, false, 0, "", false
	case code == http.StatusConflict:
		switch {
		case bytes.Contains(body, []byte(`/sold-out"`)):
			return OutSoldOut, false, 0, "", false
		case bytes.Contains(body, []byte(`/purchase-limit-reached"`)):
			return OutLimit, false, 0, "", false
		case bytes.Contains(body, []byte(`/idempotency-key-in-use"`)):
			// The first attempt (timed out here) is still running there.
			return OutOther, true, 0, "", false
		}
		return OutOther, false, 0, "", false
	case code == http.StatusTooManyRequests:
		return OutRateLimited, false, 0, "", false
	case code == http.StatusServiceUnavailable:
		return OutOverloaded, true, a.retryAfter, "", false
	case code >= 500:
		return OutServerError, true, a.retryAfter, "", false
	}
	return OutOther, false, 0, "", false
}

func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// jsonString returns the string value that follows prefix in a compact
// JSON body, without decoding the whole body.
func jsonString(body []byte, prefix string) string {
	i := bytes.Index(body, []byte(prefix))
	if i < 0 {
		return ""
	}
	rest := body[i+len(prefix):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
