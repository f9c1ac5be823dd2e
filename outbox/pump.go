package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"flashsale/lease"
)

// row is one outbox row.
type row struct {
	id          int64
	eventID     string
	aggregateID int64
	eventType   string
	payload     json.RawMessage
	createdAt   time.Time
}

// pump publishes the target's rows while le holds it; it returns when the
// lease is lost or ctx ends.
func (r *Relay) pump(ctx context.Context, t Target, le *lease.Lease, wake <-chan struct{}) error {
	keep := newKeeper(le, r.cfg.LeaseTTL)
	poll := time.NewTicker(r.cfg.Poll)
	defer poll.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		if err := keep.alive(ctx); err != nil {
			return err
		}
		rows, err := r.fetch(ctx, t)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			if err := r.publish(ctx, t, keep, rows); err != nil {
				return err
			}
			if err := r.mark(ctx, t, le.Token, rows); err != nil {
				return err
			}
			if len(rows) == r.cfg.BatchSize {
				continue // more is waiting
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		case <-prune.C:
			if _, err := t.Pool.Exec(ctx, r.q[t.Schema].prune, r.cfg.Retention); err != nil {
				r.log.WarnContext(ctx, "outbox prune failed", "schema", t.Schema, "err", err)
			}
		case <-keep.due():
		}
	}
}

func (r *Relay) fetch(ctx context.Context, t Target) ([]row, error) {
	rows, err := t.Pool.Query(ctx, r.q[t.Schema].fetch, r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: fetch %s: %w", t.Schema, err)
	}
	out, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		var x row
		err := cr.Scan(&x.id, &x.eventID, &x.aggregateID, &x.eventType, &x.payload, &x.createdAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: fetch %s: %w", t.Schema, err)
	}
	return out, nil
}

// publish writes the rows until Kafka acknowledges all of them (RequiredAcks
// all), retrying with backoff through a broker outage while keeping the
// lease alive. A retry may publish some rows twice: delivery is at least
// once, and consumers deduplicate by event id.
func (r *Relay) publish(ctx context.Context, t Target, keep *keeper, rows []row) error {
	msgs := make([]kafka.Message, len(rows))
	for i, x := range rows {
		m, err := r.message(t, x)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	delay := r.cfg.RetryDelay
	for {
		err := r.pub.WriteMessages(ctx, msgs...)
		if err == nil {
			r.stats.observe(rows, time.Now())
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.WarnContext(ctx, "outbox publish failed, retrying", "schema", t.Schema, "rows", len(rows),
			"retry_in", delay.String(), "err", err)
		sleep(ctx, delay)
		// Never sleep past the lease's renewal.
		delay = min(2*delay, 2*time.Second, r.cfg.LeaseTTL/4)
		if err := keep.alive(ctx); err != nil {
			return err
		}
	}
}

func (r *Relay) mark(ctx context.Context, t Target, token int64, rows []row) error {
	ids := make([]int64, len(rows))
	for i, x := range rows {
		ids[i] = x.id
	}
	tag, err := t.Pool.Exec(ctx, r.q[t.Schema].mark, ids, token)
	if err != nil {
		return fmt.Errorf("outbox: mark %s: %w", t.Schema, err)
	}
	if tag.RowsAffected() == int64(len(ids)) {
		return nil
	}
	var fence int64
	if err := t.Pool.QueryRow(ctx, r.q[t.Schema].fence).Scan(&fence); err != nil {
		return fmt.Errorf("outbox: read fence %s: %w", t.Schema, err)
	}
	if fence != token {
		r.stats.fence()
		return errFenced
	}
	return nil // marked by nobody else but already published: a duplicate read
}

// envelope is a CloudEvents 1.0 structured-mode event.
type envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Data            json.RawMessage `json:"data"`
}

// DataSchema names the version of the payloads this relay publishes.
const DataSchema = "https://flashsale.example/schemas/order-event/v1"

func (r *Relay) message(t Target, x row) (kafka.Message, error) {
	key := strconv.FormatInt(x.aggregateID, 10)
	v, err := json.Marshal(envelope{SpecVersion: "1.0", ID: x.eventID, Source: r.cfg.Source + "/shards/" + strconv.Itoa(t.Shard),
		Type: x.eventType, Subject: key, Time: x.createdAt.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json", DataSchema: DataSchema, Data: x.payload})
	if err != nil {
		return kafka.Message{}, fmt.Errorf("outbox: envelope of row %d: %w", x.id, err)
	}
	return kafka.Message{Key: []byte(key), Value: v, Headers: []kafka.Header{
		{Key: "ce_id", Value: []byte(x.eventID)}, {Key: "ce_type", Value: []byte(x.eventType)}}}, nil
}

// keeper extends a lease a third of its TTL before it would lapse.
type keeper struct {
	le    *lease.Lease
	every time.Duration
	next  time.Time
	timer *time.Timer
}

func newKeeper(le *lease.Lease, ttl time.Duration) *keeper {
	every := ttl / 3
	return &keeper{le: le, every: every, next: time.Now().Add(every), timer: time.NewTimer(every)}
}

func (k *keeper) due() <-chan time.Time { return k.timer.C }

func (k *keeper) alive(ctx context.Context) error {
	if time.Now().Before(k.next) {
		return nil
	}
	if err := k.le.Extend(ctx); err != nil {
		return err
	}
	k.next = time.Now().Add(k.every)
	k.timer.Reset(k.every)
	return nil
}
