package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// shardSchemas lists the shard_NNNN schemas of one database.
func shardSchemas(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname ~ '^shard_[0-9]{4}$' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// loadOrders reads every order of the sale from every shard.
func loadOrders(ctx context.Context, pools []*pgxpool.Pool, saleID int64) ([]OrderRow, error) {
	var out []OrderRow
	for _, p := range pools {
		schemas, err := shardSchemas(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, s := range schemas {
			rows, err := p.Query(ctx, `SELECT id, user_id, quantity, status, coalesce(cancel_reason, ''), created_at
				FROM `+s+`.orders WHERE sale_id = $1`, saleID)
			if err != nil {
				return nil, fmt.Errorf("orders of %s: %w", s, err)
			}
			got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrderRow, error) {
				var o OrderRow
				err := r.Scan(&o.ID, &o.Buyer, &o.Qty, &o.Status, &o.CancelReason, &o.CreatedAt)
				return o, err
			})
			if err != nil {
				return nil, fmt.Errorf("orders of %s: %w", s, err)
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// unpublished counts outbox rows not yet published, over every shard of
// every database.
func unpublished(ctx context.Context, pools []*pgxpool.Pool) (int, error) {
	total := 0
	for _, p := range pools {
		schemas, err := shardSchemas(ctx, p)
		if err != nil {
			return 0, err
		}
		if len(schemas) == 0 {
			continue
		}
		parts := make([]string, len(schemas))
		for i, s := range schemas {
			parts[i] = "SELECT count(*) AS n FROM " + s + ".outbox WHERE published_at IS NULL"
		}
		var n int
		if err := p.QueryRow(ctx, "SELECT coalesce(sum(n), 0)::int FROM ("+strings.Join(parts, " UNION ALL ")+") u").Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// waitDrained polls until every outbox is published or timeout passes; it
// returns the rows still unpublished and how long it waited.
func waitDrained(ctx context.Context, pools []*pgxpool.Pool, timeout time.Duration) (int, time.Duration, error) {
	start := time.Now()
	for {
		n, err := unpublished(ctx, pools)
		if err != nil || n == 0 || time.Since(start) >= timeout {
			return n, time.Since(start), err
		}
		select {
		case <-ctx.Done():
			return n, time.Since(start), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// redisFacts reads the sale hash and its reservations.
func redisFacts(ctx context.Context, rdb redis.Cmdable, prefix, saleID string) (RedisFacts, error) {
	var f RedisFacts
	sk := prefix + ":{sale:" + saleID + "}"
	vals, err := rdb.HMGet(ctx, sk, "stock", "total").Result()
	if err != nil {
		return f, err
	}
	if vals[0] == nil {
		return f, nil
	}
	f.Present = true
	f.Stock, _ = strconv.Atoi(fmt.Sprint(vals[0]))
	f.Total, _ = strconv.Atoi(fmt.Sprint(vals[1]))
	// Values are "qty:ms[:attempt][:c]" (inventory/invredis/lua/reserve.lua, confirm.lua).
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, sk+":res", cursor, "*", 5000).Result()
		if err != nil {
			return f, err
		}
		for i := 1; i < len(kv); i += 2 {
			q, _, _ := strings.Cut(kv[i], ":")
			n, err := strconv.Atoi(q)
			if err != nil {
				return f, fmt.Errorf("malformed reservation %q", kv[i])
			}
			f.Reserved += n
			f.Holds++
		}
		if cursor = next; cursor == 0 {
			return f, nil
		}
	}
}

// partitions lists the topic's partitions; an unknown topic has none.
func partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	conn, err := (&kafka.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	ps, err := conn.ReadPartitions(topic)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range ps {
		if p.Topic == topic {
			out = append(out, p.ID)
		}
	}
	return out, nil
}

// endOffsets is the next offset of every partition (first: the first
// offset still held instead).
func endOffsets(ctx context.Context, brokers []string, topic string, first bool) (map[int]int64, error) {
	ps, err := partitions(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range ps {
		conn, err := (&kafka.Dialer{Timeout: 5 * time.Second}).DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			return nil, err
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		var off int64
		if first {
			off, err = conn.ReadFirstOffset()
		} else {
			off, err = conn.ReadLastOffset()
		}
		_ = conn.Close()
		if err != nil {
			return nil, err
		}
		out[p] = off
	}
	return out, nil
}

// eventEnvelope is the part of a CloudEvents envelope the check reads.
type eventEnvelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		OrderID string `json:"order_id"`
		SaleID  string `json:"sale_id"`
		UserID  string `json:"user_id"`
	} `json:"data"`
}

// readEvents reads every partition from from[p] (the first offset when
// absent) up to its end now, with a kafka-go reader per partition, and
// returns the sale's events.
func readEvents(ctx context.Context, brokers []string, topic string, from map[int]int64, saleID string) ([]EventRow, int64, error) {
	ends, err := endOffsets(ctx, brokers, topic, false)
	if err != nil {
		return nil, 0, err
	}
	firsts, err := endOffsets(ctx, brokers, topic, true)
	if err != nil {
		return nil, 0, err
	}
	var mu sync.Mutex
	var out []EventRow
	var scanned int64
	var wg sync.WaitGroup
	errs := make(chan error, len(ends))
	for p, end := range ends {
		start, ok := from[p]
		if !ok || start < firsts[p] {
			start = firsts[p]
		}
		if start >= end {
			continue
		}
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
			defer r.Close()
			if err := r.SetOffset(start); err != nil {
				errs <- err
				return
			}
			var mine []EventRow
			var n int64
			for {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				m, err := r.ReadMessage(rctx)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("partition %d at offset ~%d: %w", p, start+n, err)
					return
				}
				n++
				var env eventEnvelope
				if json.Unmarshal(m.Value, &env) == nil && env.Data.SaleID == saleID {
					id, _ := strconv.ParseInt(env.Data.OrderID, 10, 64)
					mine = append(mine, EventRow{EventID: env.ID, Type: env.Type, OrderID: id, Buyer: env.Data.UserID,
						Partition: p, Offset: m.Offset, Time: m.Time})
				}
				if m.Offset >= end-1 {
					break
				}
			}
			mu.Lock()
			out = append(out, mine...)
			scanned += n
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	return out, scanned, errors.Join(func() []error {
		var es []error
		for e := range errs {
			es = append(es, e)
		}
		return es
	}()...)
}

// groupLag is a consumer group's lag: end offsets minus committed offsets,
// summed over the topic's partitions; ok is false when the group has
// committed nothing.
func groupLag(ctx context.Context, brokers []string, topic, group string) (lag int64, ok bool, err error) {
	ends, err := endOffsets(ctx, brokers, topic, false)
	if err != nil || len(ends) == 0 {
		return 0, false, err
	}
	ps := make([]int, 0, len(ends))
	for p := range ends {
		ps = append(ps, p)
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return 0, false, err
	}
	if resp.Error != nil {
		return 0, false, resp.Error
	}
	for _, p := range resp.Topics[topic] {
		if p.CommittedOffset < 0 {
			continue
		}
		ok = true
		lag += max(0, ends[p.Partition]-p.CommittedOffset)
	}
	return lag, ok, nil
}

// ledgerExists reports whether the inventory ledger's table exists on
// database 0.
func ledgerExists(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('ledger_entries') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// ledgerTotal counts every ledger entry, of any sale.
func ledgerTotal(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries`).Scan(&n)
	return n, err
}

// ledgerCreated reads the sale's created entries: order id -> count, and
// when each was recorded.
func ledgerCreated(ctx context.Context, pool *pgxpool.Pool, saleID int64) (map[int64]int, map[int64]time.Time, error) {
	rows, err := pool.Query(ctx, `SELECT order_id, recorded_at FROM ledger_entries WHERE sale_id = $1 AND kind = 'created'`, saleID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	counts, at := map[int64]int{}, map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			return nil, nil, err
		}
		counts[id]++
		at[id] = t
	}
	return counts, at, rows.Err()
}
