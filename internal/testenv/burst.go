package testenv

import "sync"

// Burst releases fn(i) for i in [0,n) from n goroutines at once, the
// shape of a contention test: every goroutine is parked at the gate first.
func Burst(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			fn(i)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
}
