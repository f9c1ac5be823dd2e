// Command flashcap sizes a flashsale deployment for target rates of
// durable orders from make bench-scale's measured CPU per order: see
// docs/capacity.md.
//
//	flashcap --from bench-results/<ts>-scale/report.json [--instances 1] [--rates 10000,100000,583000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"flashsale/internal/capacity"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "flashcap:", err)
		os.Exit(2)
	}
}

func run(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("flashcap", flag.ContinueOnError)
	from := fs.String("from", "", "make bench-scale's report.json (required)")
	instances := fs.Int("instances", 1, "which run of the report: its instance count")
	rates := fs.String("rates", "10000,100000,583000", "target durable orders per second, comma-separated")
	a := capacity.DefaultAssumptions()
	fs.Float64Var(&a.Utilisation, "utilisation", a.Utilisation, "of every core at the target rate")
	fs.IntVar(&a.APICores, "api-cores", a.APICores, "cores per API node")
	fs.IntVar(&a.PostgresCores, "pg-cores", a.PostgresCores, "cores per PostgreSQL server")
	fs.Float64Var(&a.PostgresFlushes, "pg-flushes", a.PostgresFlushes, "WAL flushes per second one PostgreSQL server's disk sustains")
	fs.IntVar(&a.BrokerCores, "broker-cores", a.BrokerCores, "cores per Kafka broker")
	fs.Float64Var(&a.PartitionRate, "partition-rate", a.PartitionRate, "orders per second one partition's consumer keeps up with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("--from is required")
	}
	f, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := capacity.FromBenchScale(f, *instances)
	if err != nil {
		return err
	}
	var plans []capacity.Plan
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("--rates: %q is not a positive number", s)
		}
		plans = append(plans, capacity.Size(p, a, r))
	}
	capacity.Table(out, plans)
	return nil
}
