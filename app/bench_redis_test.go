package app_test

// The Redis work of the buy path, counted by INFO commandstats and MONITOR.

import (
	"bufio"
	"context"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
)

// BenchmarkRedisCallsPerOrder counts the Redis work of the buy path on a
// sale of b.N units: b.N successful orders (half of them measured through
// commandstats, half under MONITOR), then b.N sold-out answers (both). Its
// ns/op is not a throughput figure; its metrics are:
//
// redis-calls/* are round trips: the commands a client sent (not those a
// script ran) that name this instance's private key prefix, counted through
// MONITOR on node 1 (the only node the buy path uses). Other clients of the
// server do not disturb it; a command carrying no key would be missed, and
// there is none on the buy path.
//
// redis-cmds/* are the INFO commandstats delta (calls + rejected_calls of
// every command but INFO, MONITOR and ECHO, summed over the three nodes):
// the commands the servers executed, including those run inside the
// reservation script. commandstats cannot tell a script's commands from a
// client's, and it counts every client of those servers, so it is exact
// only while nothing else uses them; the log line gives it per command.
//
// redis-script-us/order is the time Redis spent in EVALSHA/EVAL per order
// (commandstats usec, measured without MONITOR): the server's own cost of
// the reservation, network excluded.
//
// All include the background work of the instance during the phase: the
// sold-out memory reads the stock (one HGET) of each sale it holds sold out
// once a second.
func BenchmarkRedisCallsPerOrder(b *testing.B) {
	s := startBench(b, tuneUnlimited)
	ctx := context.Background()
	nodes := make([]*redis.Client, len(s.cfg.RedisAddrs))
	for i := range nodes {
		nodes[i] = testenv.Redis(b, s.cfg, i)
	}
	b.Run(concName(), func(b *testing.B) {
		sale := s.createSale(b.N+benchConc, b.N/benchBuyers+2+benchConc)
		mk := s.orderRequests(sale)
		// Warm the catalog and the Redis pool: opening a connection costs
		// commands (HELLO, CLIENT SETINFO) that are not per request.
		var wg sync.WaitGroup
		for range benchConc {
			wg.Go(func() { _, _, _ = send(s.client, mk(0)) })
		}
		wg.Wait()
		// Phase 1, without MONITOR (which slows Redis down): what the
		// servers executed, and how long the script ran.
		n1 := b.N - b.N/2
		b.ResetTimer()
		calls0, usec0 := commandStats(b, ctx, nodes)
		fire(b, s.client, benchConc, n1, mk, http.StatusCreated)
		calls1, usec1 := commandStats(b, ctx, nodes)
		// Phase 2, under MONITOR: the round trips, the rest of the stock.
		mon := startMonitor(b, s.cfg.RedisAddrs[0], s.cfg.RedisPrefix)
		defer mon.close()
		n2 := b.N - n1
		mon.mark(ctx, nodes[0], "orders")
		fire(b, s.client, benchConc, n2, mk, http.StatusCreated)
		mon.mark(ctx, nodes[0], "soldout")
		// Phase 3: b.N sold-out answers, both ways at once.
		calls2, _ := commandStats(b, ctx, nodes)
		soldOutStart := time.Now()
		fire(b, s.client, benchConc, b.N, mk, http.StatusConflict)
		mon.mark(ctx, nodes[0], "end")
		calls3, _ := commandStats(b, ctx, nodes)
		b.StopTimer()
		// Phase 4, idle for as long as phase 3 took: what the instance's
		// own loops send meanwhile (the sold-out memory's recheck, the Redis
		// watcher's look), which phase 3's count includes too.
		time.Sleep(time.Since(soldOutStart))
		mon.mark(ctx, nodes[0], "idle-end")

		per := func(v int64, n int) float64 { return float64(v) / float64(max(n, 1)) }
		orders, soldout := diffStats(calls1, calls0), diffStats(calls3, calls2)
		scripts := diffStats(usec1, usec0)
		po, ps, idle := mon.counted("orders"), mon.counted("soldout"), mon.counted("end")
		b.ReportMetric(per(sumStats(po), n2), "redis-calls/order")
		b.ReportMetric(per(max(0, sumStats(ps)-sumStats(idle)), b.N), "redis-calls/soldout")
		b.ReportMetric(float64(sumStats(idle)), "redis-background-calls")
		b.ReportMetric(per(sumStats(orders), n1), "redis-cmds/order")
		b.ReportMetric(per(sumStats(soldout), b.N), "redis-cmds/soldout")
		b.ReportMetric(per(scripts["evalsha"]+scripts["eval"], n1), "redis-script-us/order")
		b.Logf("round trips (MONITOR): %d orders %v, %d sold-out %v, background while idle as long %v; commandstats: %d orders %v, %d sold-out %v",
			n2, po, b.N, ps, idle, n1, orders, b.N, soldout)
	})
}

// commandStats sums INFO commandstats over nodes: command -> calls +
// rejected_calls, leaving out the commands of the measurement itself, and
// command -> microseconds spent.
func commandStats(tb testing.TB, ctx context.Context, nodes []*redis.Client) (calls, usec map[string]int64) {
	tb.Helper()
	calls, usec = map[string]int64{}, map[string]int64{}
	for _, n := range nodes {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			tb.Fatal(err)
		}
		for line := range strings.Lines(info) {
			name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
			name, isCmd := strings.CutPrefix(name, "cmdstat_")
			if !ok || !isCmd || name == "info" || name == "monitor" || name == "echo" {
				continue
			}
			for f := range strings.SplitSeq(fields, ",") {
				k, v, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls", "rejected_calls":
					calls[name] += n
				case "usec":
					usec[name] += n
				}
			}
		}
	}
	return calls, usec
}

func diffStats(after, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

func sumStats(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// monitor counts, through Redis MONITOR, the commands clients send that
// name a key prefix, split into phases by ECHO markers.
type monitor struct {
	conn   net.Conn
	prefix string
	mu     sync.Mutex
	phase  string
	counts map[string]map[string]int64 // phase -> command -> count
	seen   map[string]chan struct{}    // marker -> closed when MONITOR showed it
	done   chan struct{}
}

func startMonitor(tb testing.TB, addr, prefix string) *monitor {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		tb.Fatal(err)
	}
	rd := bufio.NewReaderSize(conn, 1<<16)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		tb.Fatalf("MONITOR: %q %v", line, err)
	}
	m := &monitor{conn: conn, prefix: prefix, counts: map[string]map[string]int64{}, seen: map[string]chan struct{}{},
		done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			m.observe(line)
		}
	}()
	return m
}

// observe reads one MONITOR line: +<time> [<db> <client>] "cmd" "arg" ...
func (m *monitor) observe(line string) {
	_, rest, ok := strings.Cut(line, "[")
	if !ok {
		return
	}
	client, args, ok := strings.Cut(rest, "] ")
	if !ok || strings.HasSuffix(client, " lua") {
		return // a command a script ran, not a round trip
	}
	cmd, _, _ := strings.Cut(strings.Trim(args, "\""), "\"")
	cmd = strings.ToLower(cmd)
	m.mu.Lock()
	defer m.mu.Unlock()
	if cmd == "echo" {
		if marker, ok := strings.CutPrefix(strings.TrimSpace(args), `"echo" "`+m.prefix+`:mark:`); ok {
			marker = strings.TrimSuffix(marker, `"`)
			m.phase = marker
			if ch, ok := m.seen[marker]; ok {
				close(ch)
			}
		}
		return
	}
	if m.phase == "" || !strings.Contains(args, m.prefix) {
		return
	}
	if m.counts[m.phase] == nil {
		m.counts[m.phase] = map[string]int64{}
	}
	m.counts[m.phase][cmd]++
}

// mark starts a phase and returns once MONITOR has shown the marker, so
// every command sent before it is counted in the previous phase.
func (m *monitor) mark(ctx context.Context, rdb *redis.Client, phase string) {
	ch := make(chan struct{})
	m.mu.Lock()
	m.seen[phase] = ch
	m.mu.Unlock()
	_ = rdb.Echo(ctx, m.prefix+":mark:"+phase).Err()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

// counted is the commands counted in phase, up to the next marker.
func (m *monitor) counted(phase string) map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.counts[phase])
}

func (m *monitor) close() {
	_ = m.conn.Close()
	<-m.done
}
