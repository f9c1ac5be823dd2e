package capacity

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func profile(t *testing.T) Profile {
	t.Helper()
	f, err := os.Open("testdata/bench-scale-1.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := FromBenchScale(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProfileSumsTheProcessesByRole: the busiest cluster master is the hot
// sale's; the other masters and the RedLock nodes are the rest.
func TestProfileSumsTheProcessesByRole(t *testing.T) {
	p := profile(t)
	want := Profile{API: 271, Postgres: 282 + 224, RedisHot: 78, RedisRest: 2 + 3 + 11 + 1 + 1, Kafka: 80, Consumers: 49 + 47, Balancer: 73}
	p.Xacts, p.Source = 0, ""
	if p != want {
		t.Errorf("profile %+v, want %+v", p, want)
	}
	if _, err := FromBenchScale(strings.NewReader(`{"runs":[]}`), 2); err == nil {
		t.Error("a report without the asked run was accepted")
	}
}

// TestSizeNamesWhatBinds: PostgreSQL is bound by its WAL flushes when the
// disk is slow and by CPU otherwise; a hot SKU needs a bucket per master's
// thread it fills.
func TestSizeNamesWhatBinds(t *testing.T) {
	p := Profile{API: 100, Postgres: 300, Xacts: 0.5, RedisHot: 60, RedisRest: 10, Kafka: 50, Consumers: 40, Balancer: 20}
	a := Assumptions{Utilisation: 0.5, APICores: 10, PostgresCores: 30, PostgresFlushes: 10000, BrokerCores: 10, PartitionRate: 1000}
	pl := Size(p, a, 100000)
	// API: 100000 × 100 µs / 0.5 = 20 cores, 2 nodes; PostgreSQL CPU 60
	// cores = 2 servers, flushes 50,000/s over 5,000 usable = 10 servers.
	if pl.APICores != 20 || pl.APINodes != 2 || pl.PostgresServers != 10 || pl.PostgresBinds != "WAL flushes" {
		t.Errorf("plan %+v", pl)
	}
	if pl.HotBuckets != 12 || pl.RedisMasters != 14 || pl.Partitions != 100 || pl.Bottleneck != "PostgreSQL" {
		t.Errorf("plan %+v", pl)
	}
	a.PostgresFlushes = 1e6
	if pl := Size(p, a, 100000); pl.PostgresServers != 2 || pl.PostgresBinds != "CPU" {
		t.Errorf("fast disk: %d servers bound by %s, want 2 by CPU", pl.PostgresServers, pl.PostgresBinds)
	}
}

// TestTheDocShowsTheCalculatorsTable: docs/capacity.md's table is flashcap's
// output on the checked-in profile, so the two cannot drift apart.
func TestTheDocShowsTheCalculatorsTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/capacity.md")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	p := profile(t)
	var plans []Plan
	for _, r := range []float64{10000, 100000, 583000} {
		plans = append(plans, Size(p, DefaultAssumptions(), r))
	}
	Table(&buf, plans)
	if !bytes.Contains(doc, buf.Bytes()) {
		t.Errorf("docs/capacity.md does not hold the calculator's table; regenerate it with\n"+
			"go run ./cmd/flashcap --from internal/capacity/testdata/bench-scale-1.json\n%s", buf.String())
	}
}
