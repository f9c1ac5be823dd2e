package consumer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// consumer must leave its group and close its connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
