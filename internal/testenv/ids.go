package testenv

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"
)

// EventID is a random UUID (version 4), as the outbox mints for events.
func EventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

var orderIDs = struct {
	sync.Mutex
	next int64
}{next: time.Now().UnixMilli() << 22}

// NextOrderID hands out increasing order ids, as the shards' id function
// does, for tests that write events without placing orders.
func NextOrderID() int64 {
	orderIDs.Lock()
	defer orderIDs.Unlock()
	orderIDs.next += 1 << 12
	return orderIDs.next
}
