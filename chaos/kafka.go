package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"flashsale/order"

	"github.com/segmentio/kafka-go"
)

// offsets returns the first and the next offset of every partition of
// the topic.
func offsets(ctx context.Context, broker, topic string) (map[int][2]int64, error) {
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, err
	}
	out := map[int][2]int64{}
	for _, p := range ps {
		if p.Topic != topic {
			continue
		}
		lc, err := d.DialLeader(ctx, "tcp", broker, topic, p.ID)
		if err != nil {
			return nil, err
		}
		_ = lc.SetDeadline(time.Now().Add(10 * time.Second))
		first, last, err := lc.ReadOffsets()
		_ = lc.Close()
		if err != nil {
			return nil, err
		}
		out[p.ID] = [2]int64{first, last}
	}
	return out, nil
}

// envelope is the part of an order event the check reads (docs/events.md).
type envelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		OrderID string `json:"order_id"`
		SaleID  string `json:"sale_id"`
	} `json:"data"`
}

// CreatedEvents reads the whole topic, every partition from its first
// offset to its high watermark, and returns the sale's created events.
func CreatedEvents(ctx context.Context, broker, topic, saleID string) ([]Event, error) {
	offs, err := offsets(ctx, broker, topic)
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	var (
		mu   sync.Mutex
		out  []Event
		errs []error
		wg   sync.WaitGroup
	)
	for p, o := range offs {
		if o[0] >= o[1] {
			continue
		}
		wg.Go(func() {
			evs, err := readPartition(ctx, broker, topic, p, o[0], o[1], saleID)
			mu.Lock()
			defer mu.Unlock()
			out = append(out, evs...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func readPartition(ctx context.Context, broker, topic string, p int, from, end int64, saleID string) ([]Event, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, err
	}
	var out []Event
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return out, fmt.Errorf("partition %d after offset %d: %w", p, from, err)
		}
		var env envelope
		if json.Unmarshal(m.Value, &env) == nil && env.Type == order.EventCreated && env.Data.SaleID == saleID {
			id, _ := strconv.ParseInt(env.Data.OrderID, 10, 64)
			out = append(out, Event{EventID: env.ID, OrderID: id})
		}
		if m.Offset >= end-1 {
			return out, nil
		}
	}
}

// groupAssigned reports whether consumer group holds a member with
// partitions of topic assigned: the consumer has joined and fetches.
func groupAssigned(ctx context.Context, broker, group, topic string) bool {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(broker), Transport: tr, Timeout: 5 * time.Second}
	res, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 || res.Groups[0].Error != nil || res.Groups[0].GroupState != "Stable" {
		return false
	}
	for _, m := range res.Groups[0].Members {
		for _, t := range m.MemberAssignments.Topics {
			if t.Topic == topic && len(t.Partitions) > 0 {
				return true
			}
		}
	}
	return false
}
