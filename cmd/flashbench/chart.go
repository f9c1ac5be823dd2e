package main

import (
	"fmt"
	"math"
	"strings"
)

// Chart draws the load's throughput (top) and latency (bottom, log scale)
// per second as a self-contained SVG, by hand.
func Chart(series []SeriesPoint, rate float64) string {
	const (
		w, h        = 960, 620
		left, right = 70, 170
		top1, h1    = 40, 220
		top2, h2    = 330, 230
	)
	pw := float64(w - left - right)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	n := len(series)
	if n == 0 {
		b.WriteString(`<text x="20" y="40">no data</text></svg>` + "\n")
		return b.String()
	}
	xAt := func(t float64) float64 { return float64(left) + pw*t/float64(n) }

	// Throughput panel.
	type line struct {
		name, color string
		dash        bool
		val         func(SeriesPoint) float64
	}
	errs := func(p SeriesPoint) float64 {
		var e int64
		for k, v := range p.Counts {
			if k != "created" && k != "sold_out" && k != "ok" {
				e += v
			}
		}
		return float64(e)
	}
	lines := []line{
		{"intended rate", "#999999", true, func(p SeriesPoint) float64 { return p.Intended }},
		{"answered/s", "#000000", false, func(p SeriesPoint) float64 { return float64(p.Done) }},
		{"created/s", "#1a9850", false, func(p SeriesPoint) float64 { return float64(p.Counts["created"]) }},
		{"sold-out/s", "#2166ac", false, func(p SeriesPoint) float64 { return float64(p.Counts["sold_out"]) }},
		{"other/s", "#d73027", false, errs},
	}
	ymax := rate
	for _, p := range series {
		for _, l := range lines {
			ymax = math.Max(ymax, l.val(p))
		}
	}
	ymax = niceCeil(math.Max(ymax, 1))
	y1 := func(v float64) float64 { return float64(top1+h1) - float64(h1)*v/ymax }
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">Throughput (requests per second, by completion second)</text>`+"\n", left, top1-14)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		y := y1(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", left, y, w-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, human(v))
	}
	for i, l := range lines {
		var pts []string
		for k, p := range series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(float64(k)+0.5), y1(l.val(p))))
		}
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="6,4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", l.color, dash, strings.Join(pts, " "))
		ly := top1 + 10 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", w-right+12, ly, w-right+36, ly, l.color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+42, ly+4, l.name)
	}

	// Latency panel, log scale.
	lat := []line{
		{"p50", "#1a9850", false, func(p SeriesPoint) float64 { return p.P50 }},
		{"p99", "#fc8d59", false, func(p SeriesPoint) float64 { return p.P99 }},
		{"max", "#d73027", true, func(p SeriesPoint) float64 { return p.Max }},
	}
	lmax := 1.0
	for _, p := range series {
		lmax = math.Max(lmax, p.Max)
	}
	lo, hi := -1.0, math.Ceil(math.Log10(lmax))
	y2 := func(v float64) float64 {
		lv := math.Log10(math.Max(v, math.Pow(10, lo)))
		return float64(top2+h2) - float64(h2)*(lv-lo)/(hi-lo)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">Latency from intended send (ms, log scale, by completion second)</text>`+"\n", left, top2-14)
	for e := lo; e <= hi; e++ {
		v := math.Pow(10, e)
		y := y2(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", left, y, w-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, human(v))
	}
	for i, l := range lat {
		var pts []string
		for k, p := range series {
			if p.Done == 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(float64(k)+0.5), y2(l.val(p))))
		}
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="6,4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", l.color, dash, strings.Join(pts, " "))
		ly := top2 + 10 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", w-right+12, ly, w-right+36, ly, l.color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+42, ly+4, l.name)
	}

	// Shared x axis labels under each panel.
	step := max(1, n/12)
	for _, base := range []int{top1 + h1, top2 + h2} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`+"\n", left, base, w-right, base)
		for t := 0; t <= n; t += step {
			x := xAt(float64(t))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>`+"\n", x, base, x, base+4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, base+17, t)
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">seconds since the first request</text>`+"\n", float64(left)+pw/2, top2+h2+36)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1fM", v/1e6))
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1fk", v/1e3))
	case v >= 1:
		return trimZero(fmt.Sprintf("%.1f", v))
	default:
		return trimZero(fmt.Sprintf("%.2f", v))
	}
}

func trimZero(s string) string {
	for _, suf := range []string{".0k", ".0M", ".0", ".00"} {
		if strings.HasSuffix(s, suf) {
			return strings.TrimSuffix(s, suf) + strings.TrimPrefix(suf, strings.TrimRight(suf, "kM"))
		}
	}
	return s
}
