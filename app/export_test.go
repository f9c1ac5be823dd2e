package app

import (
	"context"
	"net"
)

// ServeWithLoop is App.Serve with one more background loop, run: a test
// makes it die to see what an instance does when a loop dies, without a
// hook in the production code.
func ServeWithLoop(name string, run func(context.Context) error) func(*App, context.Context, net.Listener) error {
	return func(a *App, ctx context.Context, ln net.Listener) error {
		return a.serve(ctx, ln, append(a.loops(), loop{name, run}))
	}
}
