package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Both refusals come before the stack is touched: the suite never runs on
// the shared instance, and a wrong --only names the scenarios.
func TestRunRefusesBeforeTouchingTheStack(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--stack-name", "", "--down=false"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "private instance") {
		t.Fatalf("empty --stack-name: %v", err)
	}
	err = run(context.Background(), []string{"--only", "nope", "--down=false", "--stack", "/nonexistent"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "redis1-rollback") {
		t.Fatalf("--only nope: %v", err)
	}
}
