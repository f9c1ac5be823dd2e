package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Buckets is a cumulative Prometheus histogram: observations at or below
// each upper bound (seconds), summed over the series scraped.
type Buckets map[float64]float64

// commitSeries is the group commit's latency as the service measures it:
// flashsale_store_seconds, op create (the wait for the group commit
// included), answered without error.
const commitSeries = "flashsale_store_seconds_bucket"

// scrapeBuckets reads the histogram buckets of name whose labels hold
// every pair of want from the service's /metrics.
func scrapeBuckets(ctx context.Context, debugURL, name string, want map[string]string) (Buckets, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(debugURL, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	return parseBuckets(resp.Body, name, want)
}

// parseBuckets reads the Prometheus text format: name{labels} value.
func parseBuckets(r io.Reader, name string, want map[string]string) (Buckets, error) {
	out := Buckets{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		l := parseLabels(labels)
		if !holds(l, want) {
			continue
		}
		le, err1 := strconv.ParseFloat(l["le"], 64)
		v, err2 := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed bucket line %q", line)
		}
		out[le] += v
	}
	return out, sc.Err()
}

// parseLabels reads a="x",b="y" (label values hold no quote or comma in
// the series flashbench reads).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for p := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(p, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.Trim(v, `"`)
		}
	}
	return m
}

func holds(l, want map[string]string) bool {
	for k, v := range want {
		if l[k] != v {
			return false
		}
	}
	return true
}

// Since is the histogram of the observations made after before.
func (b Buckets) Since(before Buckets) Buckets {
	d := Buckets{}
	for le, n := range b {
		d[le] = n - before[le]
	}
	return d
}

// Count is the number of observations (the +Inf bucket).
func (b Buckets) Count() float64 { return b[math.Inf(1)] }

// Quantile estimates the q-quantile (0..1) in milliseconds by linear
// interpolation inside its bucket, as Prometheus's histogram_quantile
// does; a quantile in the +Inf bucket is the highest finite bound. NaN
// when empty.
func (b Buckets) Quantile(q float64) float64 {
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	sort.Float64s(les)
	total := b.Count()
	if total <= 0 || len(les) == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range les {
		n := b[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return 1000 * lower
			}
			if n == below {
				return 1000 * le
			}
			return 1000 * (lower + (le-lower)*(rank-below)/(n-below))
		}
		lower, below = le, n
	}
	return 1000 * lower
}
