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
	t     Target
	le    *lease.Lease
	next  time.Time // when the lease is extended next
	valid time.Time // until when no other relay can hold the lease
}

// work is the rows of one held shard in a round.
type work struct {
	h    *held
	rows []row
}

// tickers are a loop's clocks.
type tickers struct{ poll, prune, leases *time.Ticker }

func newTickers(cfg Config, ttl time.Duration) tickers {
	return tickers{poll: time.NewTicker(cfg.Poll), prune: time.NewTicker(time.Minute), leases: time.NewTicker(ttl / 6)}
}

func (t tickers) stop() { t.poll.Stop(); t.prune.Stop(); t.leases.Stop() }

// runGroup relays g's shards until ctx ends. It holds its share of g's
// shards (share.go), checking every sixth of the lease TTL, and runs a
// round when woken (reading the woken shards), on the poll, and when it
// took new shards (reading them all).
func (r *Relay) runGroup(ctx context.Context, g *group) {
	var hs []*held
	defer func() { r.releaseAll(ctx, hs) }()
	t := newTickers(r.cfg, r.ttl)
	defer t.stop()
	hs = r.balance(ctx, g, hs)
	all := true
	for ctx.Err() == nil {
		g.alive.Store(time.Now().UnixNano())
		hs = r.extendDue(ctx, hs)
		more, err := r.round(ctx, g, &hs, all)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay paused; leases released", "shards", len(hs), "err", err)
			r.releaseAll(ctx, hs)
			hs = nil
			sleep(ctx, r.ttl/4)
		}
		if more && err == nil {
			all = true // a shard had a full batch: more is waiting
			select {
			case <-t.leases.C: // a steady backlog must not starve the leases
				hs = r.balance(ctx, g, r.extendDue(ctx, hs))
			default:
			}
			continue
		}
		all = r.wait(ctx, g, &hs, t)
	}
}

// wait returns when a round is due, saying whether it reads every held
// shard (the poll, shards newly taken) or only the woken ones. Meanwhile
// it keeps the leases and the share, and prunes.
func (r *Relay) wait(ctx context.Context, g *group, hs *[]*held, t tickers) (all bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-g.wake:
			return false
		case <-t.poll.C:
			return true
		case <-t.prune.C:
			r.prune(ctx, *hs)
		case <-t.leases.C:
		case <-g.rebalance:
		}
		g.alive.Store(time.Now().UnixNano())
		n := len(*hs)
		*hs = r.balance(ctx, g, r.extendDue(ctx, *hs))
		if len(*hs) > n {
			return true
		}
	}
}

// acquire takes free shards of g until hs holds want of them. Each relay
// starts looking at its own place (from its rank), so that relays
// starting together mostly try different shards.
func (r *Relay) acquire(ctx context.Context, g *group, hs []*held, want int) []*held {
	start := r.members.start(len(g.targets))
	for i := range g.targets {
		if len(hs) >= want {
			break
		}
		t := g.targets[(start+i)%len(g.targets)]
		if slices.ContainsFunc(hs, func(h *held) bool { return h.t.Schema == t.Schema }) {
			continue
		}
		if h := r.take(ctx, t); h != nil {
			hs = append(hs, h)
		}
	}
	return hs
}

// take takes t's lease and claims the shard with its token, or returns nil.
func (r *Relay) take(ctx context.Context, t Target) *held {
	began := time.Now()
	le, err := r.locker.Acquire(ctx, "relay:"+t.Schema, 0)
	if err != nil {
		if !errors.Is(err, lease.ErrNotAcquired) && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay lease not taken", "schema", t.Schema, "err", err)
		}
		return nil
	}
	if err := r.claim(ctx, t, le.Token); err != nil {
		le.Release(ctx)
		if !errors.Is(err, errFenced) && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay lease not claimed", "schema", t.Schema, "err", err)
		}
		return nil
	}
	h := &held{t: t, le: le}
	r.renewed(h, began)
	r.slots[t.Shard].held.Store(true)
	return h
}

// renewed records a lease taken or extended by a call that began at began:
// RedLock guarantees it to nobody else for the TTL from then, less a tenth
// for the clocks' drift.
func (r *Relay) renewed(h *held, began time.Time) {
	h.valid = began.Add(r.ttl - r.ttl/10)
	h.next = time.Now().Add(r.ttl / 3)
}

// extend extends h's lease now.
func (r *Relay) extend(ctx context.Context, h *held) error {
	began := time.Now()
	if err := h.le.Extend(ctx); err != nil {
		return err
	}
	r.renewed(h, began)
	return nil
}

// extendDue extends the leases a third of their TTL old and drops the
// ones that were lost.
func (r *Relay) extendDue(ctx context.Context, hs []*held) []*held {
	now := time.Now()
	var lost []*held
	for _, h := range hs {
		if now.After(h.next) && r.extend(ctx, h) != nil {
			lost = append(lost, h)
		}
	}
	return r.drop(ctx, hs, lost, "relay lease lost")
}

// drop gives up the shards in lost and returns hs without them.
func (r *Relay) drop(ctx context.Context, hs, lost []*held, msg string) []*held {
	for _, h := range lost {
		r.log.WarnContext(ctx, msg, "schema", h.t.Schema, "token", h.le.Token)
		r.giveBack(ctx, h)
	}
	return slices.DeleteFunc(hs, func(h *held) bool { return slices.Contains(lost, h) })
}

// giveBack releases h's lease and clears its holder in relay_lease (unless
// a newer relay claimed the shard meanwhile).
func (r *Relay) giveBack(ctx context.Context, h *held) {
	r.slots[h.t.Shard].held.Store(false)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := h.t.Pool.Exec(rctx, r.q[h.t.Schema].release, h.le.Token); err != nil {
		r.log.WarnContext(ctx, "relay lease row not cleared", "schema", h.t.Schema, "err", err)
	}
	h.le.Release(ctx)
}

func (r *Relay) releaseAll(ctx context.Context, hs []*held) {
	for _, h := range hs {
		r.giveBack(ctx, h)
	}
}

func (r *Relay) prune(ctx context.Context, hs []*held) {
	if r.cfg.Retention == 0 {
		return // published rows were deleted, not kept
	}
	for _, h := range hs {
		if _, err := h.t.Pool.Exec(ctx, r.q[h.t.Schema].prune, r.cfg.Retention); err != nil {
			r.log.WarnContext(ctx, "outbox prune failed", "schema", h.t.Schema, "err", err)
		}
	}
}

// round publishes what the held shards have waiting (all of them, or
// those woken since their last read): one round trip reads them, one
// write publishes them, one transaction marks them. more says a shard had
// a full batch, so more is waiting. A shard whose lease was lost before
// the write or whose mark was fenced off is dropped from *hs.
func (r *Relay) round(ctx context.Context, g *group, hs *[]*held, all bool) (more bool, err error) {
	var read []*held
	for _, h := range *hs {
		if s := r.slots[h.t.Shard]; s.dirty.Swap(false) || all {
			read = append(read, h)
		}
	}
	if len(read) == 0 {
		return false, nil
	}
	works, err := r.fetch(ctx, g, read)
	if err != nil {
		return false, err
	}
	for _, w := range works {
		more = more || len(w.rows) == r.cfg.BatchSize
	}
	if len(works) == 0 {
		return false, nil
	}
	if works, err = r.publish(ctx, hs, works); err != nil || len(works) == 0 {
		return more, err
	}
	return more, r.mark(ctx, g, hs, works)
}

// fetch reads the oldest unpublished rows of the shards hs, in one round
// trip, and returns the shards that have any.
func (r *Relay) fetch(ctx context.Context, g *group, hs []*held) ([]work, error) {
	b := &pgx.Batch{}
	for _, h := range hs {
		b.Queue(r.q[h.t.Schema].fetch, r.cfg.BatchSize)
	}
	br := g.pool.SendBatch(ctx, b)
	defer br.Close()
	var works []work
	for _, h := range hs {
		rows, err := br.Query()
		var got []row
		if err == nil {
			got, err = pgx.CollectRows(rows, scanRow)
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: fetch %s: %w", h.t.Schema, err)
		}
		if len(got) > 0 {
			works = append(works, work{h: h, rows: got})
		}
	}
	return works, br.Close()
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
// leases alive, and returns the works it published. Before every write it
// checks that each shard's lease is still its own: a relay held up past
// its lease (a slow write, a pause) while another took the shard over
// publishes none of that shard's rows, which its successor has read and
// published already. A retry may publish some rows twice: delivery is at
// least once, and consumers deduplicate by event id.
func (r *Relay) publish(ctx context.Context, hs *[]*held, works []work) ([]work, error) {
	msgs := make(map[*held][]kafka.Message, len(works))
	for _, w := range works {
		for _, x := range w.rows {
			m, err := r.message(w.h.t, x)
			if err != nil {
				return nil, err
			}
			msgs[w.h] = append(msgs[w.h], m)
		}
	}
	delay := r.cfg.RetryDelay
	for {
		works = r.stillHeld(ctx, hs, works)
		if len(works) == 0 {
			return nil, nil
		}
		var all []kafka.Message
		for _, w := range works {
			all = append(all, msgs[w.h]...)
		}
		err := r.pub.WriteMessages(ctx, all...)
		if err == nil {
			for _, w := range works {
				r.stats.observe(w.rows, time.Now())
			}
			return works, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.log.WarnContext(ctx, "outbox publish failed, retrying", "rows", len(all),
			"retry_in", delay.String(), "err", err)
		sleep(ctx, delay)
		delay = min(2*delay, 2*time.Second, r.ttl/4)
	}
}

// stillHeld keeps the works whose shard's lease is still this relay's. A
// lease with less than half its TTL left (the loop was held up) is
// extended first; a shard whose lease cannot be extended was, or may have
// been, taken over: it is dropped from *hs, its rows left unpublished.
func (r *Relay) stillHeld(ctx context.Context, hs *[]*held, works []work) []work {
	var lost []*held
	for _, w := range works {
		if time.Until(w.h.valid) < r.ttl/2 && r.extend(ctx, w.h) != nil {
			lost = append(lost, w.h)
			r.stats.fence()
		}
	}
	*hs = r.drop(ctx, *hs, lost, "relay lease lost before publishing; its rows are left to the new holder")
	return slices.DeleteFunc(works, func(w work) bool { return slices.Contains(lost, w.h) })
}

// mark moves the published rows of every shard to outbox_published (or
// deletes them, with no retention) in one transaction, each shard's only
// while its lease's token holds; a shard
// fenced off by a newer relay is dropped from *hs.
func (r *Relay) mark(ctx context.Context, g *group, hs *[]*held, works []work) error {
	b := &pgx.Batch{}
	for _, w := range works {
		ids := make([]int64, len(w.rows))
		for j, x := range w.rows {
			ids[j] = x.id
		}
		b.Queue(r.q[w.h.t.Schema].mark, ids, w.h.le.Token)
	}
	short, err := execBatch(ctx, g.pool, b, works)
	if err != nil {
		return err
	}
	var fenced []*held
	for _, h := range short {
		var fence int64
		if err := h.t.Pool.QueryRow(ctx, r.q[h.t.Schema].fence).Scan(&fence); err != nil {
			return fmt.Errorf("outbox: read fence %s: %w", h.t.Schema, err)
		}
		if fence != h.le.Token {
			r.stats.fence()
			fenced = append(fenced, h)
		}
		// Otherwise the rows were already marked: a duplicate read.
	}
	*hs = r.drop(ctx, *hs, fenced, "relay fenced off by a newer relay")
	return nil
}

// execBatch runs the marks in one round trip and returns the shards whose
// mark changed fewer rows than it was given.
func execBatch(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch, works []work) ([]*held, error) {
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	var short []*held
	for _, w := range works {
		tag, err := br.Exec()
		if err != nil {
			return nil, fmt.Errorf("outbox: mark: %w", err)
		}
		if tag.RowsAffected() != int64(len(w.rows)) {
			short = append(short, w.h)
		}
	}
	return short, br.Close()
}

// DataSchema names the version of the payloads this relay publishes.
const DataSchema = "https://flashsale.example/schemas/order-event/v1"

func (r *Relay) message(t Target, x row) (kafka.Message, error) {
	key := strconv.FormatInt(x.aggregateID, 10)
	v, err := cloudevent.AppendJSON(make([]byte, 0, 256+len(x.payload)), &cloudevent.Envelope{SpecVersion: cloudevent.SpecVersion,
		ID: x.eventID, Source: r.cfg.Source + "/shards/" + strconv.Itoa(t.Shard), Type: x.eventType, Subject: key,
		Time: x.createdAt.UTC().Format(time.RFC3339Nano), DataContentType: cloudevent.DataContentTypeJSON, DataSchema: DataSchema,
		Data: x.payload})
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
