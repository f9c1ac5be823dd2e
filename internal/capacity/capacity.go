// Package capacity sizes a flashsale deployment from the CPU one durable
// order costs each server, as make bench-scale measures it: how many API
// cores, PostgreSQL servers, Redis Cluster masters, Kafka brokers and
// partitions, and consumer cores a target rate of orders needs, and which
// of them binds. It is arithmetic over stated assumptions; docs/capacity.md
// says where every input comes from.
package capacity

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Profile is what one durable order costs, by role, in CPU µs.
type Profile struct {
	API       float64 // every serve process
	Postgres  float64 // every PostgreSQL server's backends of the service's databases
	Xacts     float64 // PostgreSQL transactions per order (group commits, relay, ledger)
	RedisHot  float64 // the master holding the sale's keys (its reservation scripts)
	RedisRest float64 // the other masters and the RedLock nodes
	Kafka     float64 // the broker, producer and consumer sides
	Consumers float64 // the consume processes
	Balancer  float64 // HAProxy
	Source    string  // where the figures come from
}

// FromBenchScale reads make bench-scale's report.json and returns the
// profile of its run with the given instance count.
func FromBenchScale(r io.Reader, instances int) (Profile, error) {
	var rep struct {
		Runs []struct {
			Instances int                `json:"instances"`
			CPU       map[string]float64 `json:"cpu_us_per_order"`
			Orders    struct {
				Xacts float64 `json:"pg_xacts_per_order"`
			} `json:"orders"`
		} `json:"runs"`
	}
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return Profile{}, fmt.Errorf("capacity: read the bench-scale report: %w", err)
	}
	for _, run := range rep.Runs {
		if run.Instances == instances {
			p := fromProcesses(run.CPU)
			p.Xacts = run.Orders.Xacts
			p.Source = fmt.Sprintf("make bench-scale, %d instance(s), closed run", instances)
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("capacity: the report has no run with %d instances", instances)
}

// fromProcesses sums the processes' CPU by role; of the Redis Cluster's
// masters the busiest is the hot sale's.
func fromProcesses(cpu map[string]float64) Profile {
	var p Profile
	var masters []float64
	for name, us := range cpu {
		switch {
		case strings.HasPrefix(name, "serve"):
			p.API += us
		case strings.HasPrefix(name, "postgres"):
			p.Postgres += us
		case strings.HasPrefix(name, "redis-cluster"):
			masters = append(masters, us)
		case strings.HasPrefix(name, "redis"):
			p.RedisRest += us
		case name == "kafka":
			p.Kafka += us
		case strings.HasPrefix(name, "consume"):
			p.Consumers += us
		case name == "haproxy":
			p.Balancer += us
		}
	}
	sort.Float64s(masters)
	for i, us := range masters {
		if i == len(masters)-1 {
			p.RedisHot = us
		} else {
			p.RedisRest += us
		}
	}
	return p
}

// Assumptions are the hardware the model sizes for.
type Assumptions struct {
	Utilisation     float64 // of every core at the target rate, headroom for the burst's peaks
	APICores        int     // per API node
	PostgresCores   int     // per PostgreSQL server
	PostgresFlushes float64 // WAL flushes per second one server's disk sustains (each transaction one)
	BrokerCores     int     // per Kafka broker
	PartitionRate   float64 // orders per second one partition's consumer keeps up with
}

// DefaultAssumptions are the hardware docs/capacity.md sizes for.
func DefaultAssumptions() Assumptions {
	return Assumptions{Utilisation: 0.6, APICores: 16, PostgresCores: 32, PostgresFlushes: 20000, BrokerCores: 16, PartitionRate: 5000}
}

// Plan is what one target rate needs.
type Plan struct {
	Rate                 float64
	APICores, APINodes   int
	PostgresServers      int
	PostgresBinds        string // "CPU" or "WAL flushes"
	HotBuckets           int    // stock buckets one hot SKU is split into, one master each
	RedisMasters         int
	Brokers, Partitions  int
	ConsumerCores        int
	BalancerCores        int
	Bottleneck           string  // the role that takes the most cores
	HotSKULimitPerMaster float64 // orders/s one master's thread carries for one sale's keys
}

// Size plans the deployment for rate orders per second.
func Size(p Profile, a Assumptions, rate float64) Plan {
	cores := func(us float64) float64 { return rate * us / 1e6 / a.Utilisation }
	pl := Plan{Rate: rate, HotSKULimitPerMaster: a.Utilisation * 1e6 / p.RedisHot}
	pl.APICores = ceil(cores(p.API))
	pl.APINodes = ceil(cores(p.API) / float64(a.APICores))
	byCPU := ceil(cores(p.Postgres) / float64(a.PostgresCores))
	byFlush := ceil(rate * p.Xacts / (a.PostgresFlushes * a.Utilisation))
	pl.PostgresServers, pl.PostgresBinds = byCPU, "CPU"
	if byFlush > byCPU {
		pl.PostgresServers, pl.PostgresBinds = byFlush, "WAL flushes"
	}
	pl.HotBuckets = ceil(cores(p.RedisHot))
	pl.RedisMasters = max(pl.HotBuckets, ceil(cores(p.RedisHot+p.RedisRest)), 3)
	pl.Brokers = max(3, ceil(cores(p.Kafka)/float64(a.BrokerCores)))
	pl.Partitions = max(6, ceil(rate/a.PartitionRate))
	pl.ConsumerCores = ceil(cores(p.Consumers))
	pl.BalancerCores = ceil(cores(p.Balancer))
	shares := map[string]float64{"API": cores(p.API), "PostgreSQL": cores(p.Postgres), "Redis": cores(p.RedisHot + p.RedisRest),
		"Kafka": cores(p.Kafka), "consumers": cores(p.Consumers), "load balancer": cores(p.Balancer)}
	pl.Bottleneck = largest(shares)
	return pl
}

func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

func largest(m map[string]float64) string {
	best, name := -1.0, ""
	for k, v := range m {
		if v > best || (v == best && k < name) {
			best, name = v, k
		}
	}
	return name
}

// Table writes the plans as Markdown.
func Table(w io.Writer, plans []Plan) {
	fmt.Fprintln(w, "| orders/s | API cores (nodes) | PostgreSQL servers (binds) | hot SKU buckets | Redis masters | Kafka brokers / partitions | consumer cores | LB cores | most cores go to |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, p := range plans {
		fmt.Fprintf(w, "| %s | %d (%d) | %d (%s) | %d | %d | %d / %d | %d | %d | %s |\n", thousands(p.Rate), p.APICores, p.APINodes,
			p.PostgresServers, p.PostgresBinds, p.HotBuckets, p.RedisMasters, p.Brokers, p.Partitions, p.ConsumerCores, p.BalancerCores, p.Bottleneck)
	}
}

func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
