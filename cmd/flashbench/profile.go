package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// StageShare is one stage's part of the service's CPU profile.
type StageShare struct {
	Stage string  `json:"stage"`
	Share float64 `json:"share"`  // of the profile's CPU samples
	PerOp float64 `json:"per_op"` // CPU µs per operation of the phase: share × the process's µs per op
}

// StageProfile is serve's CPU split by stage over one phase, from its own
// CPU profile (net/http/pprof on the debug listener).
type StageProfile struct {
	Phase   string       `json:"phase"`
	Seconds int          `json:"seconds"`
	CPU     float64      `json:"cpu_seconds"` // sampled CPU time
	Stages  []StageShare `json:"stages"`
	File    string       `json:"file,omitempty"` // the raw profile beside the report, for go tool pprof
	Error   string       `json:"error,omitempty"`
}

// stack is one profile sample: its frames' function names, leaf first,
// and the CPU it stands for.
type stack struct {
	funcs []string
	nanos int64
}

// stageRule names a stage by a function-name prefix (or, with contains,
// a substring).
type stageRule struct {
	stage, match string
	contains     bool
}

func (r stageRule) hit(fn string) bool {
	if r.contains {
		return strings.Contains(fn, r.match)
	}
	return strings.HasPrefix(fn, r.match)
}

// wholeStackRules claim a sample when any frame matches: the asynchronous
// half and the background loops own everything they call (their SQL, their
// JSON), so it is not charged to the order path's stages.
var wholeStackRules = []stageRule{
	{stage: "relay", match: "flashsale/outbox."},
	{stage: "consumers", match: "flashsale/consumer."},
	{stage: "consumers", match: "flashsale/ledger."},
	{stage: "consumers", match: "flashsale/notify."},
	{stage: "background loops", match: "(*Expirer)", contains: true},
	{stage: "background loops", match: "econcil", contains: true},
	{stage: "background loops", match: "(*SoldOut).Run", contains: true},
	{stage: "background loops", match: "(*Watcher).Run", contains: true},
	{stage: "background loops", match: "flashsale/live."},
	{stage: "background loops", match: "flashsale/metrics.(*Live)"},
	{stage: "garbage collector", match: "runtime.gcBgMarkWorker"},
	{stage: "garbage collector", match: "runtime.bgsweep"},
	{stage: "garbage collector", match: "runtime.bgscavenge"},
}

// leafRules name the order path's stages: the frame nearest the leaf that
// matches one decides, so JSON encoded in a handler is "json" and a
// syscall made by pgx is "commit".
var leafRules = []stageRule{
	{stage: "json", match: "encoding/json."},
	{stage: "auth (JWT)", match: "flashsale/auth."},
	{stage: "auth (JWT)", match: "github.com/golang-jwt/"},
	{stage: "commit (PostgreSQL client, group commit)", match: "github.com/jackc/"},
	{stage: "commit (PostgreSQL client, group commit)", match: "flashsale/order/orderpg."},
	{stage: "commit (PostgreSQL client, group commit)", match: "flashsale/internal/batch."},
	{stage: "reserve (Redis client)", match: "github.com/redis/"},
	{stage: "reserve (Redis client)", match: "flashsale/inventory"},
	{stage: "kafka client", match: "github.com/segmentio/kafka-go"},
	{stage: "order service", match: "flashsale/order."},
	{stage: "metrics", match: "github.com/prometheus/"},
	{stage: "metrics", match: "flashsale/metrics."},
	{stage: "http (net/http, api)", match: "net/http."},
	{stage: "http (net/http, api)", match: "flashsale/api."},
}

// stageOf attributes one sample to a stage.
func stageOf(funcs []string) string {
	for _, r := range wholeStackRules {
		for _, fn := range funcs {
			if r.hit(fn) {
				return r.stage
			}
		}
	}
	for _, fn := range funcs {
		for _, r := range leafRules {
			if r.hit(fn) {
				return r.stage
			}
		}
	}
	return "runtime and other"
}

// stageShares sums the samples by stage; perOp, the process's CPU µs per
// operation, turns shares into µs.
func stageShares(stacks []stack, perOp float64) ([]StageShare, float64) {
	by := map[string]int64{}
	var total int64
	for _, s := range stacks {
		by[stageOf(s.funcs)] += s.nanos
		total += s.nanos
	}
	out := make([]StageShare, 0, len(by))
	for st, n := range by {
		share := float64(n) / float64(max(total, 1))
		out = append(out, StageShare{Stage: st, Share: share, PerOp: share * perOp})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Share != out[j].Share {
			return out[i].Share > out[j].Share
		}
		return out[i].Stage < out[j].Stage
	})
	return out, float64(total) / 1e9
}

// fetchProfile asks the service's debug listener for a CPU profile of the
// next secs seconds and returns it as profile.proto.
func fetchProfile(ctx context.Context, debugURL string, secs int) ([]byte, error) {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(debugURL, "/"), secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

// rawProfile is the part of profile.proto (github.com/google/pprof) a
// stage split needs.
type rawProfile struct {
	strings   []string
	funcName  map[uint64]int64    // function id -> string index
	locFuncs  map[uint64][]uint64 // location id -> function ids, innermost first
	samples   [][]uint64          // location ids, leaf first
	values    [][]int64
	valueKind []int64 // string index of each sample type's type
}

// parseProfile decodes a (gzipped) pprof CPU profile into its stacks.
func parseProfile(data []byte) ([]stack, error) {
	if len(data) > 1 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	p := &rawProfile{funcName: map[uint64]int64{}, locFuncs: map[uint64][]uint64{}}
	if err := p.decode(data); err != nil {
		return nil, fmt.Errorf("pprof profile: %w", err)
	}
	return p.stacks()
}

// stacks resolves the samples' locations to function names; the value is
// the cpu (nanoseconds) sample type, else the last one.
func (p *rawProfile) stacks() ([]stack, error) {
	vi := len(p.valueKind) - 1
	for i, k := range p.valueKind {
		if p.str(k) == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, errors.New("pprof profile: no sample type")
	}
	out := make([]stack, 0, len(p.samples))
	for i, locs := range p.samples {
		var s stack
		if vi < len(p.values[i]) {
			s.nanos = p.values[i][vi]
		}
		for _, l := range locs {
			for _, f := range p.locFuncs[l] {
				s.funcs = append(s.funcs, p.str(p.funcName[f]))
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *rawProfile) str(i int64) string {
	if i < 0 || int(i) >= len(p.strings) {
		return ""
	}
	return p.strings[i]
}

// fields calls f for each field of one protobuf message.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// varints reads a repeated integer field, packed or not.
func varints(typ protowire.Type, v []byte, x uint64) []uint64 {
	if typ == protowire.VarintType {
		return []uint64{x}
	}
	var out []uint64
	for len(v) > 0 {
		y, n := protowire.ConsumeVarint(v)
		if n < 0 {
			break
		}
		out, v = append(out, y), v[n:]
	}
	return out
}

// decode reads Profile: 1 sample_type, 2 sample, 4 location, 5 function,
// 6 string_table.
func (p *rawProfile) decode(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			return fields(v, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				if n == 1 {
					p.valueKind = append(p.valueKind, int64(x))
				}
				return nil
			})
		case 2:
			return p.sample(v)
		case 4:
			return p.location(v)
		case 5:
			return p.function(v)
		case 6:
			p.strings = append(p.strings, string(v))
		}
		return nil
	})
}

// sample reads Sample: 1 location_id, 2 value.
func (p *rawProfile) sample(b []byte) error {
	var locs []uint64
	var vals []int64
	err := fields(b, func(n protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch n {
		case 1:
			locs = append(locs, varints(typ, v, x)...)
		case 2:
			for _, y := range varints(typ, v, x) {
				vals = append(vals, int64(y))
			}
		}
		return nil
	})
	p.samples, p.values = append(p.samples, locs), append(p.values, vals)
	return err
}

// location reads Location: 1 id, 4 line (Line: 1 function_id).
func (p *rawProfile) location(b []byte) error {
	var id uint64
	var funcs []uint64
	err := fields(b, func(n protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		switch n {
		case 1:
			id = x
		case 4:
			return fields(v, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				if n == 1 {
					funcs = append(funcs, x)
				}
				return nil
			})
		}
		return nil
	})
	p.locFuncs[id] = funcs
	return err
}

// function reads Function: 1 id, 2 name.
func (p *rawProfile) function(b []byte) error {
	var id uint64
	var name int64
	err := fields(b, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
		switch n {
		case 1:
			id = x
		case 2:
			name = int64(x)
		}
		return nil
	})
	p.funcName[id] = name
	return err
}
