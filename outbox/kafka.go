package outbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Writer is a kafka-go writer with a transport of its own, closed with it.
type Writer struct {
	*kafka.Writer
	transport *kafka.Transport
}

// Close flushes the writer and closes its connections.
func (w *Writer) Close() error {
	err := w.Writer.Close()
	w.transport.CloseIdleConnections()
	return err
}

// NewWriter returns the synchronous writer the relay needs: every write
// waits for all in-sync replicas, batches wait at most 10 ms instead of
// kafka-go's default second, and nothing is ever written asynchronously
// (kafka-go's Async drops errors). Keys hash to partitions, so one order's
// events share a partition. Its own transport refreshes metadata every
// 2 s, so a topic created after start is found quickly.
//
// Why 10 ms: the shards' relays write concurrently, and a partition's
// batch gathers what they publish within the wait. BenchmarkRelay's
// service-like variants, side by side (docs/benchmarks.md): 2 ms sent
// ~14 messages per produce request at ~37 µs of Kafka CPU per event,
// 10 ms ~31 at ~19 µs, and the relay's own CPU fell too; relay lag p99
// stayed ~50 ms, a fraction of the group commit's.
//
// Why 256 messages at most per batch: kafka-go gives every new partition
// batch a slice of that many messages up front (152 bytes each), and a
// batch holds ~33 in the service-like benchmark; at 1,000 that slice was
// a third of the relay's allocation per event. A backlog still goes out
// 256 messages per produce request.
func NewWriter(brokers []string, topic string) *Writer {
	tr := &kafka.Transport{MetadataTTL: 2 * time.Second, DialTimeout: 5 * time.Second}
	return &Writer{transport: tr, Writer: &kafka.Writer{
		Transport:       tr,
		Addr:            kafka.TCP(brokers...),
		Topic:           topic,
		Balancer:        &kafka.Hash{},
		RequiredAcks:    kafka.RequireAll,
		BatchTimeout:    10 * time.Millisecond,
		BatchSize:       256,
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		WriteTimeout:    5 * time.Second,
		ReadTimeout:     5 * time.Second,
	}}
}

// EnsureTopic creates the topic when it is missing.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions, replication int) error {
	var errs []error
	for _, b := range brokers {
		err := ensureOn(ctx, b, kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: replication})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("outbox: create topic %s: %w", topic, errors.Join(errs...))
}

func ensureOn(ctx context.Context, broker string, tc kafka.TopicConfig) error {
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return err
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return err
	}
	defer cc.Close()
	err = cc.CreateTopics(tc)
	if errors.Is(err, kafka.TopicAlreadyExists) {
		return nil
	}
	return err
}
