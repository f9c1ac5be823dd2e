package consumer

import "context"

// ErrCrashed is what Run returns after a simulated crash.
var ErrCrashed = errHalt

// CrashAfterEffect makes Run stop, as a killed process would, right after
// the effect of an event for which crash returns true has committed in
// PostgreSQL and before its offset is committed in Kafka. crash is asked
// about every event once its batch (or its own transaction) committed.
func CrashAfterEffect(c *Consumer, crash func(Event) bool) {
	c.effects = crashingEffects{effects: c.effects, crash: crash}
}

// crashingEffects halts Run after the effects of an event crash picks.
type crashingEffects struct {
	effects
	crash func(Event) bool
}

func (e crashingEffects) Apply(ctx context.Context, ev Event) (bool, error) {
	applied, err := e.effects.Apply(ctx, ev)
	if err == nil && e.crash(ev) {
		return applied, errHalt
	}
	return applied, err
}

func (e crashingEffects) ApplyBatch(ctx context.Context, evs []Event) ([]bool, error) {
	applied, err := e.effects.ApplyBatch(ctx, evs)
	if err != nil {
		return applied, err
	}
	for _, ev := range evs {
		if e.crash(ev) {
			return applied, errHalt
		}
	}
	return applied, nil
}
