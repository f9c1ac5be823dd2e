package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkasarama "github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/segmentio/kafka-go"

	"flashsale/outbox"
)

// TestRelayedMessageIsAStructuredModeCloudEvent relays one row to a real
// topic, reads it back with kafka-go, and hands it to the official
// CloudEvents SDK's Kafka protocol binding (kafka_sarama.Message, the
// SDK's reader of Kafka records; only its record type is sarama's). The
// binding decides the mode from the content-type header as the spec
// says: without it the message has no ce_specversion header either, so
// the SDK reports an unknown encoding and ToEvent fails.
func TestRelayedMessageIsAStructuredModeCloudEvent(t *testing.T) {
	w := newWorld(t)
	w.targets = w.targets[:1]
	ids := w.insert(w.targets[0], 4242, "flashsale.order.paid")
	stop := run(w.relay(w.writer(), "ce"))
	defer stop()
	w.waitDrained()

	m := w.readOne()
	msg := kafkasarama.NewMessageFromConsumerMessage(asSarama(m))
	if enc := msg.ReadEncoding(); enc != binding.EncodingStructured {
		t.Fatalf("the SDK reads the message as %v, want structured (headers %v)", enc, m.Headers)
	}
	ev, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		t.Fatalf("the SDK refuses the message: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	var data struct {
		N    int64  `json:"n"`
		Type string `json:"type"`
	}
	if err := ev.DataAs(&data); err != nil {
		t.Fatal(err)
	}
	if ev.ID() != ids[0] || ev.Type() != "flashsale.order.paid" || ev.Source() != "/test/shards/0" ||
		ev.Subject() != "4242" || ev.DataSchema() != outbox.DataSchema || ev.Time().IsZero() ||
		data.N != 4242 || data.Type != "flashsale.order.paid" {
		t.Errorf("event %s, data %+v", ev, data)
	}
}

// readOne reads the first message of the topic.
func (w *world) readOne() kafka.Message {
	w.t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: w.cfg.KafkaBrokers, Topic: w.topic, GroupID: "ce-" + w.cfg.RedisPrefix,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := rd.ReadMessage(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// asSarama is m as the record type the SDK's Kafka binding reads: the same
// topic, partition, offset, key, value and headers.
func asSarama(m kafka.Message) *sarama.ConsumerMessage {
	cm := &sarama.ConsumerMessage{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		cm.Headers = append(cm.Headers, &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	return cm
}
