package outbox

import "testing"

// TestSharesCoverEveryShardWithinOne: over databases of any sizes, the
// relays' shares of each database add up to its shards, and each relay's
// total is within one of every other's.
func TestSharesCoverEveryShardWithinOne(t *testing.T) {
	for _, dbs := range [][]int{{10}, {5, 5}, {8, 8}, {3, 4, 5}, {1}, {7, 1, 1}} {
		for alive := 1; alive <= 7; alive++ {
			totals := make([]int, alive)
			offset := 0
			for _, n := range dbs {
				sum := 0
				for rank := range alive {
					q := share(n, alive, rank, offset)
					sum += q
					totals[rank] += q
				}
				if sum != n {
					t.Errorf("databases %v, %d relays: shares of a database of %d add up to %d", dbs, alive, n, sum)
				}
				offset += n % alive
			}
			lo, hi := totals[0], totals[0]
			for _, n := range totals {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Errorf("databases %v, %d relays: totals %v", dbs, alive, totals)
			}
		}
	}
}
