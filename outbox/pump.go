package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"flashsale/internal/cloudevent"
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

// held is a shard whose lease this loop holds.
type held struct {
	t    Target
	le   *lease.Lease
	next time.Time // when the lease is extended next
}

// runGroup relays g's shards until ctx ends. It takes the lease of every
// free shard of g, checking again every sixth of the lease TTL, and runs
// rounds while it holds any.
func (r *Relay) runGroup(ctx context.Context, g *group) {
	var hs []*held
	defer func() { r.releaseAll(ctx, hs) }()
	poll := time.NewTicker(r.cfg.Poll)
	defer poll.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	leases := time.NewTicker(r.cfg.LeaseTTL / 6)
	defer leases.Stop()
	hs = r.acquire(ctx, g, hs)
	for ctx.Err() == nil {
		hs = r.extendDue(ctx, hs)
		more, err := r.round(ctx, g, &hs)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay paused; leases released", "shards", len(hs), "err", err)
			r.releaseAll(ctx, hs)
			hs = nil
			sleep(ctx, r.cfg.LeaseTTL/4)
		}
		if more && err == nil {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
		case <-g.wake:
		case <-poll.C:
		case <-prune.C:
			r.prune(ctx, hs)
		case <-leases.C:
			hs = r.acquire(ctx, g, hs)
		}
	}
}

// acquire takes the leases of g's shards that hs lacks and are free.
func (r *Relay) acquire(ctx context.Context, g *group, hs []*held) []*held {
	for _, t := range g.targets {
		if slices.ContainsFunc(hs, func(h *held) bool { return h.t.Schema == t.Schema }) {
			continue
		}
		le, err := r.locker.Acquire(ctx, "relay:"+t.Schema, 0)
		if err != nil {
			if !errors.Is(err, lease.ErrNotAcquired) && ctx.Err() == nil {
				r.log.WarnContext(ctx, "relay lease not taken", "schema", t.Schema, "err", err)
			}
			continue
		}
		if err := r.claim(ctx, t, le.Token); err != nil {
			le.Release(ctx)
			if !errors.Is(err, errFenced) && ctx.Err() == nil {
				r.log.WarnContext(ctx, "relay lease not claimed", "schema", t.Schema, "err", err)
			}
			continue
		}
		hs = append(hs, &held{t: t, le: le, next: time.Now().Add(r.cfg.LeaseTTL / 3)})
	}
	return hs
}

// extendDue extends the leases a third of their TTL old and drops the
// ones that were lost.
func (r *Relay) extendDue(ctx context.Context, hs []*held) []*held {
	now := time.Now()
	return slices.DeleteFunc(hs, func(h *held) bool {
		if now.Before(h.next) {
			return false
		}
		if err := h.le.Extend(ctx); err != nil {
			r.log.WarnContext(ctx, "relay lease lost", "schema", h.t.Schema, "err", err)
			return true
		}
		h.next = time.Now().Add(r.cfg.LeaseTTL / 3)
		return false
	})
}

func (r *Relay) releaseAll(ctx context.Context, hs []*held) {
	for _, h := range hs {
		h.le.Release(ctx)
	}
}

func (r *Relay) prune(ctx context.Context, hs []*held) {
	for _, h := range hs {
		if _, err := h.t.Pool.Exec(ctx, r.q[h.t.Schema].prune, r.cfg.Retention); err != nil {
			r.log.WarnContext(ctx, "outbox prune failed", "schema", h.t.Schema, "err", err)
		}
	}
}

// round publishes what the held shards have waiting: one round trip reads
// them all, one write publishes them, one transaction marks them. more
// says a shard had a full batch, so more is waiting. A shard whose mark
// was fenced off is dropped from *hs.
func (r *Relay) round(ctx context.Context, g *group, hs *[]*held) (more bool, err error) {
	if len(*hs) == 0 {
		return false, nil
	}
	batches, err := r.fetch(ctx, g, *hs)
	if err != nil {
		return false, err
	}
	var all []row
	for _, b := range batches {
		all = append(all, b...)
		more = more || len(b) == r.cfg.BatchSize
	}
	if len(all) == 0 {
		return false, nil
	}
	if err := r.publish(ctx, hs, batches); err != nil {
		return false, err
	}
	r.stats.observe(all, time.Now())
	return more, r.mark(ctx, g, hs, batches)
}

// fetch reads the oldest unpublished rows of every held shard, in one
// round trip; batches[i] are the rows of hs[i].
func (r *Relay) fetch(ctx context.Context, g *group, hs []*held) ([][]row, error) {
	b := &pgx.Batch{}
	for _, h := range hs {
		b.Queue(r.q[h.t.Schema].fetch, r.cfg.BatchSize)
	}
	br := g.pool.SendBatch(ctx, b)
	defer br.Close()
	batches := make([][]row, len(hs))
	for i, h := range hs {
		rows, err := br.Query()
		if err == nil {
			batches[i], err = pgx.CollectRows(rows, scanRow)
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: fetch %s: %w", h.t.Schema, err)
		}
	}
	return batches, br.Close()
}

func scanRow(cr pgx.CollectableRow) (row, error) {
	var x row
	// The payload is read as bytes: into a json.RawMessage pgx would run
	// json.Unmarshal over every event's jsonb, which PostgreSQL has already
	// validated and the envelope's encoding checks once more.
	var payload []byte
	err := cr.Scan(&x.id, &x.eventID, &x.aggregateID, &x.eventType, &payload, &x.createdAt)
	x.payload = payload
	return x, err
}

// publish writes the rows until Kafka acknowledges all of them (RequiredAcks
// all), retrying with backoff through a broker outage while keeping the
// leases alive. A retry may publish some rows twice: delivery is at least
// once, and consumers deduplicate by event id.
func (r *Relay) publish(ctx context.Context, hs *[]*held, batches [][]row) error {
	var msgs []kafka.Message
	for i, b := range batches {
		for _, x := range b {
			m, err := r.message((*hs)[i].t, x)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
	}
	delay := r.cfg.RetryDelay
	for {
		err := r.pub.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.WarnContext(ctx, "outbox publish failed, retrying", "rows", len(msgs),
			"retry_in", delay.String(), "err", err)
		sleep(ctx, delay)
		// Never sleep past a lease's renewal. A lease lost meanwhile only
		// means its shard's mark is fenced off below.
		delay = min(2*delay, 2*time.Second, r.cfg.LeaseTTL/4)
		for _, h := range *hs {
			if time.Now().After(h.next) && h.le.Extend(ctx) == nil {
				h.next = time.Now().Add(r.cfg.LeaseTTL / 3)
			}
		}
	}
}

// mark records the published rows of every shard in one transaction, each
// shard's only while its lease's token holds; a shard fenced off by a
// newer relay is dropped from *hs.
func (r *Relay) mark(ctx context.Context, g *group, hs *[]*held, batches [][]row) error {
	b := &pgx.Batch{}
	var marked []int
	for i, rows := range batches {
		if len(rows) == 0 {
			continue
		}
		ids := make([]int64, len(rows))
		for j, x := range rows {
			ids[j] = x.id
		}
		b.Queue(r.q[(*hs)[i].t.Schema].mark, ids, (*hs)[i].le.Token)
		marked = append(marked, i)
	}
	short, err := execBatch(ctx, g.pool, b, marked, batches)
	if err != nil {
		return err
	}
	var fenced []*held
	for _, i := range short {
		h := (*hs)[i]
		var fence int64
		if err := h.t.Pool.QueryRow(ctx, r.q[h.t.Schema].fence).Scan(&fence); err != nil {
			return fmt.Errorf("outbox: read fence %s: %w", h.t.Schema, err)
		}
		if fence != h.le.Token {
			r.stats.fence()
			r.log.WarnContext(ctx, "relay fenced off by a newer relay", "schema", h.t.Schema, "token", h.le.Token, "fence", fence)
			fenced = append(fenced, h)
		}
		// Otherwise the rows were already marked: a duplicate read.
	}
	*hs = slices.DeleteFunc(*hs, func(h *held) bool { return slices.Contains(fenced, h) })
	return nil
}

// execBatch runs the marks in one round trip and returns the indexes (of
// batches) whose mark changed fewer rows than it was given.
func execBatch(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch, marked []int, batches [][]row) ([]int, error) {
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	var short []int
	for _, i := range marked {
		tag, err := br.Exec()
		if err != nil {
			return nil, fmt.Errorf("outbox: mark: %w", err)
		}
		if tag.RowsAffected() != int64(len(batches[i])) {
			short = append(short, i)
		}
	}
	return short, br.Close()
}

// DataSchema names the version of the payloads this relay publishes.
const DataSchema = "https://flashsale.example/schemas/order-event/v1"

func (r *Relay) message(t Target, x row) (kafka.Message, error) {
	key := strconv.FormatInt(x.aggregateID, 10)
	v, err := json.Marshal(cloudevent.Envelope{SpecVersion: cloudevent.SpecVersion, ID: x.eventID, Source: r.cfg.Source + "/shards/" + strconv.Itoa(t.Shard),
		Type: x.eventType, Subject: key, Time: x.createdAt.UTC().Format(time.RFC3339Nano),
		DataContentType: cloudevent.DataContentTypeJSON, DataSchema: DataSchema, Data: x.payload})
	if err != nil {
		return kafka.Message{}, fmt.Errorf("outbox: envelope of row %d: %w", x.id, err)
	}
	return kafka.Message{Key: []byte(key), Value: v, Headers: []kafka.Header{
		{Key: "content-type", Value: structuredMode},
		{Key: "ce_id", Value: []byte(x.eventID)}, {Key: "ce_type", Value: []byte(x.eventType)}}}, nil
}

// structuredMode is the content-type header that marks a message as a
// structured-mode CloudEvent under the Kafka protocol binding; without it
// a CloudEvents reader looks for binary-mode ce_ headers, finds no
// ce_specversion, and rejects the message. ce_id and ce_type stay as
// conveniences for filtering without parsing; in structured mode readers
// ignore them. One shared slice: kafka-go only reads header values.
var structuredMode = []byte(cloudevent.ContentType)
