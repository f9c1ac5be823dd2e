package consumer

// ErrCrashed is what Run returns after a simulated crash.
var ErrCrashed = errCrashed

// CrashAfterEffect makes Run stop, as a killed process would, right after
// the effect of an event for which crash returns true has committed in
// PostgreSQL and before its offset is committed in Kafka.
func CrashAfterEffect(c *Consumer, crash func(Event) bool) { c.crash = crash }
