package main

import (
	"math"
	"testing"
	"time"
)

func TestScheduleRampsThenHoldsTheRate(t *testing.T) {
	s := Schedule{Rate: 1000, Ramp: 2 * time.Second, Duration: 3 * time.Second}
	// 1000/s × 2 s / 2 during the ramp, then 3000.
	if got := s.Total(); got != 4000 {
		t.Fatalf("Total = %d, want 4000", got)
	}
	prev := time.Duration(-1)
	perSecond := map[int]int{}
	for i := range s.Total() {
		off := s.Offset(i)
		if off < prev {
			t.Fatalf("Offset(%d) = %s goes back from %s", i, off, prev)
		}
		prev = off
		perSecond[int(off/time.Second)]++
	}
	// The ramp's first second carries a quarter of its arrivals, the
	// second three quarters; then the full rate.
	want := map[int]int{0: 250, 1: 750, 2: 1000, 3: 1000, 4: 1000}
	for sec, n := range want {
		if math.Abs(float64(perSecond[sec]-n)) > 2 {
			t.Errorf("second %d: %d arrivals, want %d", sec, perSecond[sec], n)
		}
	}
	if last := s.Offset(s.Total() - 1); last > 5*time.Second {
		t.Errorf("last arrival at %s, after the end", last)
	}
	if r := s.RateAt(time.Second); r != 500 {
		t.Errorf("RateAt(1s) = %v, want 500", r)
	}
}

func TestScheduleWithoutRampIsEvenlySpaced(t *testing.T) {
	s := Schedule{Rate: 200, Duration: time.Second}
	if s.Total() != 200 {
		t.Fatalf("Total = %d", s.Total())
	}
	for i := range s.Total() {
		if want := time.Duration(i) * 5 * time.Millisecond; absDur(s.Offset(i)-want) > time.Microsecond {
			t.Fatalf("Offset(%d) = %s, want %s", i, s.Offset(i), want)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
