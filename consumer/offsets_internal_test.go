package consumer

import (
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestOffsetsKeepEachPartitionsLast checks what a commit sends: the last
// handled message of each partition (which commits those before it), with
// no payload held until the commit, and the count of all.
func TestOffsetsKeepEachPartitionsLast(t *testing.T) {
	var o offsets
	msg := func(p int, off int64) kafka.Message {
		return kafka.Message{Topic: "t", Partition: p, Offset: off, Value: []byte("v"), Headers: []kafka.Header{{Key: "k"}}}
	}
	o.add(msg(0, 1), msg(1, 7), msg(0, 2))
	o.add(msg(1, 8))
	o.add(msg(2, 3), msg(0, 3))
	if o.n != 6 || len(o.last) != 3 {
		t.Fatalf("%d messages in %d partitions, want 6 in 3", o.n, len(o.last))
	}
	want := map[int]int64{0: 3, 1: 8, 2: 3}
	for _, m := range o.last {
		if m.Offset != want[m.Partition] || m.Value != nil || m.Headers != nil {
			t.Errorf("partition %d: offset %d (payload %q, %d headers), want offset %d without payload",
				m.Partition, m.Offset, m.Value, len(m.Headers), want[m.Partition])
		}
	}
	if o.due() {
		t.Error("6 messages just handled are due already")
	}
}
