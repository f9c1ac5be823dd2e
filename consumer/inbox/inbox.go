// Package inbox applies events exactly once in effect: the id of every
// event a consumer applies is recorded in the inbox table in the same
// PostgreSQL transaction as the event's effect, so a redelivered event finds
// its row and is skipped. It knows nothing of Kafka: package consumer feeds
// it from a topic, and the handlers (the inventory ledger, the webhook
// sender) see only Event and a transaction.
package inbox

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"flashsale"
	"flashsale/internal/cloudevent"
)

// Event is one CloudEvent as the consumers see it (docs/events.md).
type Event struct {
	ID      string    // UUID, lower case
	Source  string    // e.g. /flashsale/shards/7
	Type    string    // e.g. flashsale.order.created
	Subject string    // the order id, decimal
	Time    time.Time // when the change was committed
	Data    json.RawMessage
}

// Handler applies the effect of one event inside tx. It runs only for an
// event its consumer has not applied before; returning an error rolls the
// effect and the inbox row back, and the event is tried again.
type Handler interface {
	Handle(ctx context.Context, tx pgx.Tx, ev Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx pgx.Tx, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx pgx.Tx, ev Event) error { return f(ctx, tx, ev) }

// AfterCommitter is implemented by a handler with work that must follow
// the commit of an effect, outside its transaction (calling another
// service, for one). AfterCommit runs after every successful attempt,
// redeliveries included, until it succeeds once: it must be idempotent.
// The event is acknowledged only after it returns nil.
type AfterCommitter interface {
	AfterCommit(ctx context.Context, ev Event) error
}

// BatchAfterCommitter is implemented by a handler whose after-commit work
// is cheaper for many events at once (one check per sale instead of one
// per event, for one). After a batch committed, AfterCommitBatch gets every
// event of the batch, redeliveries included, in message order, instead of
// one AfterCommit call each; the same rules hold: idempotent, and no event
// of the batch is acknowledged before it returns nil. When it fails, each
// event is tried again alone, through AfterCommit.
type BatchAfterCommitter interface {
	AfterCommitBatch(ctx context.Context, evs []Event) error
}

// Deduplicator is implemented by a handler whose effect itself records
// each event's id under a unique key, in the transaction of the effect (the
// ledger's entries are keyed by event id): an inbox row would record the
// same fact again, one more row and index entry per event, so Apply and
// ApplyBatch write none for it and let it say which events were new. It
// applies a batch with one call, and the rows that other transactions
// update too (a sale's counters, for one) must be taken in one fixed
// order, not in message order: two batches could otherwise lock them in
// opposite orders and deadlock, which PostgreSQL resolves only after
// deadlock_timeout by failing one of them. A failed batch is tried again
// one event at a time, so a batch must have the effect of its events
// applied one by one.
type Deduplicator interface {
	// HandleNew applies, in order and inside tx, the events of evs whose
	// ids it has not recorded before; applied[i] says whether evs[i] was
	// one (a second copy of an id within evs is not).
	HandleNew(ctx context.Context, tx pgx.Tx, evs []Event) (applied []bool, err error)
}

// ErrInvalidEvent marks a message that is no CloudEvent this service reads.
var ErrInvalidEvent = errors.New("inbox: invalid event")

// Parse reads a CloudEvents 1.0 structured-mode JSON envelope.
func Parse(value []byte) (Event, error) {
	e, err := cloudevent.Decode(value)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if e.SpecVersion != cloudevent.SpecVersion {
		return Event{}, fmt.Errorf("%w: specversion %q, want %s", ErrInvalidEvent, e.SpecVersion, cloudevent.SpecVersion)
	}
	id, ok := normalUUID(e.ID)
	if !ok {
		return Event{}, fmt.Errorf("%w: id %q is not a UUID", ErrInvalidEvent, e.ID)
	}
	if e.Type == "" || e.Source == "" {
		return Event{}, fmt.Errorf("%w: type and source are required", ErrInvalidEvent)
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return Event{}, fmt.Errorf("%w: time %q: %v", ErrInvalidEvent, e.Time, err)
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return Event{}, fmt.Errorf("%w: data is required", ErrInvalidEvent)
	}
	return Event{ID: id, Source: e.Source, Type: e.Type, Subject: e.Subject, Time: t.UTC(), Data: e.Data}, nil
}

// IDBytes is the 16 bytes of an event id as Parse returns it (a UUID in
// lower-case 8-4-4-4-12 hex form), for binding to a uuid parameter: pgx
// sends them in binary, where a string is first refused by the binary
// encoder (an error formatted for nothing) and then sent as text for
// PostgreSQL to parse. Other input gives unspecified bytes.
func IDBytes(id string) [16]byte {
	var h [32]byte
	n := 0
	for i := 0; i < len(id) && n < len(h); i++ {
		if id[i] != '-' {
			h[n] = id[i]
			n++
		}
	}
	var b [16]byte
	_, _ = hex.Decode(b[:], h[:n])
	return b
}

// normalUUID checks the 8-4-4-4-12 hex form and lowers its case.
func normalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// Beginner starts transactions; *pgxpool.Pool is one.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

var (
	insertQuery      = flashsale.SQL.InboxInsert
	insertBatchQuery = flashsale.SQL.InboxInsertBatch
	pruneQuery       = flashsale.SQL.InboxPrune
)

// Apply records ev in consumer's inbox and runs h, in one transaction on
// db (database 0). applied is false when the event had been applied before
// and h was not run; on error nothing was applied.
func Apply(ctx context.Context, db Beginner, consumer string, ev Event, h Handler) (applied bool, err error) {
	if d, ok := h.(Deduplicator); ok {
		a, err := applyNew(ctx, db, []Event{ev}, d)
		return err == nil && a[0], err
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, insertQuery, consumer, ev.ID, ev.Type)
		if err != nil {
			return fmt.Errorf("inbox: record %s: %w", ev.ID, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		applied = true
		return h.Handle(ctx, tx, ev)
	})
	if err != nil {
		return false, err
	}
	return applied, nil
}

// ApplyBatch records evs in consumer's inbox with one statement and runs h
// for each event not applied before, in the order of evs, all in one
// transaction on db: one commit (one fsync) for the batch instead of one
// per event. applied[i] says whether h ran for evs[i]; a second copy of an
// id within evs is a redelivery, so only its first one runs. An error from
// any event rolls the whole batch back: nothing was applied. A
// Deduplicator gets the whole batch in one HandleNew call instead, and no
// inbox row is written.
func ApplyBatch(ctx context.Context, db Beginner, consumer string, evs []Event, h Handler) (applied []bool, err error) {
	if d, ok := h.(Deduplicator); ok {
		return applyNew(ctx, db, evs, d)
	}
	ids, types := make([][16]byte, len(evs)), make([]string, len(evs))
	for i, ev := range evs {
		ids[i], types[i] = IDBytes(ev.ID), ev.Type
	}
	applied = make([]bool, len(evs))
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		todo, err := QueryIDs(ctx, tx, insertBatchQuery, consumer, ids, types)
		if err != nil {
			return fmt.Errorf("inbox: record %d events: %w", len(evs), err)
		}
		run := make([]Event, 0, len(todo))
		for i, ev := range evs {
			if todo[ids[i]] {
				delete(todo, ids[i]) // a later copy in the batch is a duplicate
				applied[i] = true
				run = append(run, ev)
			}
		}
		return handleEach(ctx, tx, run, h)
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// QueryIDs runs a query of event ids (uuid) in tx and returns them as a
// set of their bytes (IDBytes).
func QueryIDs(ctx context.Context, tx pgx.Tx, sql string, args ...any) (map[[16]byte]bool, error) {
	rows, _ := tx.Query(ctx, sql, args...)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return nil, err
	}
	set := make(map[[16]byte]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// handleEach runs h for evs in order.
func handleEach(ctx context.Context, tx pgx.Tx, evs []Event, h Handler) error {
	for _, ev := range evs {
		if err := h.Handle(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// applyNew runs d for evs in one transaction on db.
func applyNew(ctx context.Context, db Beginner, evs []Event, d Deduplicator) (applied []bool, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		applied, err = d.HandleNew(ctx, tx, evs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// Execer runs a statement; *pgxpool.Pool is one.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PruneChunk is the most rows one statement of Prune deletes.
const PruneChunk = 5000

// Prune deletes consumer's inbox rows recorded longer ago than retention,
// PruneChunk rows per statement, and returns how many it deleted. A row is
// needed only while its event can be redelivered: an event older than
// retention that came again would be applied again, unless its handler
// deduplicates it on its own (the ledger and the webhook sender do, by
// event id).
func Prune(ctx context.Context, db Execer, consumer string, retention time.Duration) (int64, error) {
	var n int64
	for {
		tag, err := db.Exec(ctx, pruneQuery, consumer, retention, PruneChunk)
		if err != nil {
			return n, fmt.Errorf("inbox: prune %s: %w", consumer, err)
		}
		n += tag.RowsAffected()
		if tag.RowsAffected() < PruneChunk {
			return n, nil
		}
	}
}
