package main

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for flashbench when --ceilings
// starts `flashbench bare-server` as a child process (os.Executable).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bare-server" {
		os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
