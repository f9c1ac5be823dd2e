package consumer

import (
	"context"
	"errors"

	"flashsale/consumer/inbox"
)

// effects commits the effects of events together with their inbox rows,
// which is what makes a redelivery harmless. The consumer goes through the
// inbox (inboxEffects); the crash tests wrap it (export_test.go) to stop
// Run between an effect's commit and its offset's.
type effects interface {
	// Apply commits ev's effect once; applied is false for a redelivery.
	Apply(ctx context.Context, ev Event) (applied bool, err error)
	// ApplyBatch commits the effects of evs in one transaction; applied[i]
	// is false for a redelivery.
	ApplyBatch(ctx context.Context, evs []Event) (applied []bool, err error)
}

// errHalt, returned by effects after a commit, makes Run return at once
// with it, as a killed process would stop: the effects are committed, their
// offsets are not, and nothing more runs for the messages (no after-commit
// work, no retry, no Stats). Only the crash tests' effects return it.
var errHalt = errors.New("consumer: halted after the effect committed")

// inboxEffects applies events through the inbox of consumer name on db.
type inboxEffects struct {
	db   DB
	name string
	h    Handler
}

func (e inboxEffects) Apply(ctx context.Context, ev Event) (bool, error) {
	return inbox.Apply(ctx, e.db, e.name, ev, e.h)
}

func (e inboxEffects) ApplyBatch(ctx context.Context, evs []Event) ([]bool, error) {
	return inbox.ApplyBatch(ctx, e.db, e.name, evs, e.h)
}
