package main

import (
	"math"
	"time"
)

// Schedule is the open model's arrival process: the rate grows linearly
// from zero to Rate over Ramp, then stays at Rate for Duration. Arrival i
// (0-based) is due at Offset(i) after the start, whatever happened to the
// arrivals before it: that intended time, not the moment a sender got
// round to it, is where each request's latency is measured from, so a
// stalled service cannot hide the requests it kept from being sent
// (coordinated omission).
type Schedule struct {
	Rate     float64 // arrivals per second once ramped up
	Ramp     time.Duration
	Duration time.Duration // at full rate, after the ramp
}

// arrivalsBy is N(t), the arrivals due in [0, t).
func (s Schedule) arrivalsBy(t time.Duration) float64 {
	if s.Rate <= 0 || t <= 0 {
		return 0
	}
	sec, ramp := t.Seconds(), s.Ramp.Seconds()
	if sec <= ramp {
		return s.Rate * sec * sec / (2 * ramp)
	}
	return s.Rate*ramp/2 + s.Rate*(sec-ramp)
}

// Total is the number of arrivals in the whole schedule.
func (s Schedule) Total() int64 {
	return int64(math.Ceil(s.arrivalsBy(s.Ramp+s.Duration) - 1e-9))
}

// Offset is when arrival i is due, counted from the start.
func (s Schedule) Offset(i int64) time.Duration {
	if s.Rate <= 0 {
		return 0
	}
	n, ramp := float64(i), s.Ramp.Seconds()
	var sec float64
	if inRamp := s.Rate * ramp / 2; n < inRamp {
		sec = math.Sqrt(2 * n * ramp / s.Rate)
	} else {
		sec = ramp + (n-inRamp)/s.Rate
	}
	return time.Duration(sec * float64(time.Second))
}

// RateAt is the intended arrival rate at t, for the chart.
func (s Schedule) RateAt(t time.Duration) float64 {
	switch {
	case t < 0 || t > s.Ramp+s.Duration:
		return 0
	case t < s.Ramp:
		return s.Rate * t.Seconds() / s.Ramp.Seconds()
	default:
		return s.Rate
	}
}
