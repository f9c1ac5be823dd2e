package main

import (
	"context"
	"fmt"
)

// SoakReport is a long run of the order path at a steady rate, to see
// whether serve's memory stays flat (issue 12).
type SoakReport struct {
	Rate          float64    `json:"rate"`
	RateSource    string     `json:"rate_source"`
	WarmupSeconds float64    `json:"warmup_s"`
	Peak          *Phase     `json:"peak,omitempty"` // the closed order peak the rate derives from
	Phase         Phase      `json:"phase"`
	RSS           *ProcUsage `json:"serve,omitempty"` // serve's use over the soak, RSS second by second
}

// soakRun measures the order peak (unless --soak-rate), then sends orders
// in the open model at --rate-fraction of it for --soak-duration on a sale
// too large to sell out, and judges serve's RSS.
func (b *bench) soakRun(ctx context.Context, rep *Report) (*Report, error) {
	o := b.opts
	s := &SoakReport{Rate: o.SoakRate, RateSource: "--soak-rate", WarmupSeconds: o.SoakWarmup.Seconds()}
	if s.Rate == 0 {
		peak, c := b.ordersPeak(ctx, phaseOrders, o.URL, o.ServicePID, "spk")
		if c != nil {
			c.Close()
		}
		if peak.PerSecond <= 0 {
			return nil, fmt.Errorf("soak: the order peak could not be measured: %s", peak.Error)
		}
		s.Peak, s.Rate = &peak, o.RateFraction*peak.PerSecond
		s.RateSource = fmt.Sprintf("%.2f × the closed order peak of %.0f/s measured first", o.RateFraction, peak.PerSecond)
	}
	id, err := b.createSale(ctx, "SOAK-"+b.runID, 100_000_000, 1_000_000)
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	c := b.buyClient(o.URL, id)
	defer c.Close()
	b.say("soak: sale %s, %.0f orders/s (%s) for %s", id, s.Rate, s.RateSource, o.SoakDuration)
	s.Phase = runOpenPhase(ctx, "soak", fmt.Sprintf("POST /v1/orders creating durable orders at %.0f/s for %s, open model", s.Rate, o.SoakDuration),
		s.Rate, o.Workers, o.SoakDuration, OutCreated, b.watched(), httpOp(c, b.tokens.Fresh(1_000_000, 1), b.runID+"soak"))
	for i, u := range s.Phase.Processes {
		if u.Name == "flashsale serve" {
			s.RSS = &s.Phase.Processes[i]
		}
	}
	rep.Soak = s
	rep.Targets = targets(rep)
	rep.Checks = soakChecks(s.Phase)
	rep.Passed = Passed(rep.Checks)
	b.say("soak done: %.0f orders/s over %.0f s", s.Phase.PerSecond, s.Phase.Seconds)
	return b.finish(rep)
}

// soakChecks are the checks a soak can make: every arrival was sent and
// answered as an order.
func soakChecks(ph Phase) []Check {
	var bad int64
	for out, n := range ph.Outcomes {
		if out != OutCreated.String() {
			bad += n
		}
	}
	return []Check{{Name: "every-soak-request-created-an-order", OK: bad == 0 && ph.Ops > 0,
		Detail: fmt.Sprintf("%d requests: %s", ph.Ops, joinCounts(ph.Outcomes, " "))}}
}
