// Package notify posts every order event to a webhook, signed, once in
// effect. It is the notify consumer's inbox.Handler: in the inbox
// transaction it claims the event's row in the notifications table, posts,
// and records the receiver's answer; a failed post rolls the claim back
// and the consumer tries the event again.
//
// The request is a CloudEvents 1.0 structured-mode JSON body
// (Content-Type application/cloudevents+json) signed per Standard Webhooks
// (https://www.standardwebhooks.com), so its libraries verify it:
//
//	Webhook-Id:        the event id, the same on every retry
//	Webhook-Timestamp: unix seconds when this try was signed
//	Webhook-Signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
// The secret is "whsec_" followed by the base64 of a 24 to 64 byte key.
// A receiver checks the signature, rejects timestamps far from its clock,
// and deduplicates on Webhook-Id: delivery is at least once. The window is
// a crash (or lost connection to PostgreSQL) after the receiver accepted a
// post and before the transaction committed; the event is then posted
// again. Any 2xx accepts; 5xx, 408, 429 and network errors are retried
// with backoff up to MaxTries within one attempt of the consumer, which
// retries the event itself and finally dead-letters it; other answers fail
// the attempt at once.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale"
	"flashsale/consumer/inbox"
	"flashsale/internal/cloudevent"
	"flashsale/order"
)

// Headers of every webhook request.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// types are the event types posted; others are acknowledged unsent.
var types = map[string]bool{
	order.EventCreated:   true,
	order.EventPaid:      true,
	order.EventCancelled: true,
	order.EventExpired:   true,
}

// Config describes the receiver and how hard to try it.
type Config struct {
	URL string
	// Secret is a Standard Webhooks secret: "whsec_" + base64 of the key.
	Secret string
	// Timeout bounds one request; default 5 s.
	Timeout time.Duration
	// MaxTries per consumer attempt; default 3.
	MaxTries int
	// BackoffMin and BackoffMax bound the wait between tries; defaults
	// 200 ms and 2 s.
	BackoffMin, BackoffMax time.Duration
	// Client defaults to one that follows no redirects.
	Client *http.Client
	Log    *slog.Logger
}

// Sender posts events to the webhook.
type Sender struct {
	cfg         Config
	secret      []byte
	claim, sent string
	now         func() time.Time
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("notify: the webhook URL must be an http(s) URL")
	}
	key, err := ParseSecret(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 3
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 200 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(2*time.Second, cfg.BackoffMin)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, secret: key, claim: flashsale.SQL.NotifyClaim,
		sent: flashsale.SQL.NotifySent, now: time.Now}, nil
}

// BatchSize is the consumer batch size the sender runs with: one event per
// transaction, since Handle posts inside the inbox transaction and a batch
// that failed after some posts would post them again.
const BatchSize = 1

// Handle posts ev unless it was posted before, in the inbox transaction tx.
func (s *Sender) Handle(ctx context.Context, tx pgx.Tx, ev inbox.Event) error {
	if !types[ev.Type] {
		return nil
	}
	tag, err := tx.Exec(ctx, s.claim, ev.ID, ev.Type, ev.Subject)
	if err != nil {
		return fmt.Errorf("notify: claim %s: %w", ev.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // delivered before, under another consumer name or an inbox row since pruned
	}
	body, err := Body(ev)
	if err != nil {
		return err
	}
	code, tries, err := s.deliver(ctx, ev.ID, body)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.sent, ev.ID, code, tries); err != nil {
		return fmt.Errorf("notify: record %s: %w", ev.ID, err)
	}
	return nil
}

// Body is the webhook body of ev: its CloudEvents JSON envelope.
func Body(ev inbox.Event) ([]byte, error) {
	b, err := cloudevent.AppendJSON(nil, &cloudevent.Envelope{SpecVersion: cloudevent.SpecVersion, ID: ev.ID, Source: ev.Source, Type: ev.Type,
		Subject: ev.Subject, Time: ev.Time.UTC().Format(time.RFC3339Nano), DataContentType: cloudevent.DataContentTypeJSON, Data: ev.Data})
	if err != nil {
		return nil, fmt.Errorf("notify: body of %s: %w", ev.ID, err)
	}
	return b, nil
}

// secretPrefix marks a Standard Webhooks secret.
const secretPrefix = "whsec_"

// ParseSecret returns the key of a Standard Webhooks secret: "whsec_"
// followed by the standard base64 of 24 to 64 bytes, the spec's range. A
// plain string is refused rather than used as raw key bytes: receivers'
// libraries would base64-decode it and compute another key.
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New(`notify: the webhook secret must be "whsec_" + base64 of 24 to 64 random bytes (make one with: echo "whsec_$(openssl rand -base64 32)")`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, errors.New("notify: the webhook secret after whsec_ must be the standard base64 of 24 to 64 bytes")
	}
	return key, nil
}

// Sign is the Webhook-Signature of body sent with id at timestamp (unix
// seconds, decimal): "v1," and the base64 HMAC-SHA256 of
// id + "." + timestamp + "." + body under key.
func Sign(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature header (one or more space-separated
// signatures, as during a key rotation) and that its timestamp is within
// tolerance of now, for receivers.
func Verify(key []byte, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > tolerance {
		return false
	}
	want := []byte(Sign(key, id, timestamp, body))
	for sig := range strings.FieldsSeq(signatures) {
		if hmac.Equal(want, []byte(sig)) {
			return true
		}
	}
	return false
}

// deliver posts body until the receiver accepts it, a try fails for good,
// or MaxTries are spent.
func (s *Sender) deliver(ctx context.Context, id string, body []byte) (status, tries int, err error) {
	wait := s.cfg.BackoffMin
	for tries = 1; ; tries++ {
		status, err = s.post(ctx, id, body)
		switch {
		case err == nil && status >= 200 && status < 300:
			return status, tries, nil
		case err == nil && !retryable(status):
			return status, tries, fmt.Errorf("notify: %s: webhook answered %d", id, status)
		case err == nil:
			err = fmt.Errorf("notify: %s: webhook answered %d", id, status)
		}
		if tries >= s.cfg.MaxTries || ctx.Err() != nil {
			return status, tries, fmt.Errorf("%w (after %d tries)", err, tries)
		}
		s.cfg.Log.WarnContext(ctx, "webhook try failed; retrying", "event_id", id, "try", tries, "err", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return status, tries, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, s.cfg.BackoffMax)
	}
}

func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// post makes one signed request; err is a network error or timeout.
func (s *Sender) post(ctx context.Context, id string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", cloudevent.ContentType)
	req.Header.Set("User-Agent", "flashsale-webhook/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(s.secret, id, ts, body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("notify: %s: %w", id, err)
	}
	// Drain a little so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
