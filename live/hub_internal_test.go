package live

import (
	"context"
	"testing"
)

// TestReceiveDropsTopicsWithoutSubscribers hands the hub a message of a
// topic with no local subscriber, which costs it no allocation (it is not
// decoded), then the same message once the topic has one, who gets it.
func TestReceiveDropsTopicsWithoutSubscribers(t *testing.T) {
	h := NewHub(nil, HubConfig{})
	msg := NewEvent(OrderTopic("42"), "order", "7", []byte(`{"id":"42"}`)).encode()
	if n := testing.AllocsPerRun(100, func() { h.receive(context.Background(), msg) }); n != 0 {
		t.Errorf("a message nobody here watches cost %v allocations", n)
	}
	sub := &Sub{hub: h, topic: OrderTopic("42"), ch: make(chan *Event, 1)}
	h.topics[sub.topic] = &topic{subs: map[*Sub]struct{}{sub: {}}}
	h.receive(context.Background(), msg)
	select {
	case ev := <-sub.ch:
		if ev.Topic != sub.topic || ev.ID != "7" || string(ev.Data) != `{"id":"42"}` {
			t.Errorf("delivered %+v", ev)
		}
	default:
		t.Fatal("the subscriber got nothing")
	}
}
