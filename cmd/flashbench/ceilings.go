package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ceilings measures the machine's ceilings and the service's peaks; it
// returns the sold-out peak (0 when it could not be measured).
func (b *bench) ceilings(ctx context.Context, rep *Report) float64 {
	o := b.opts
	// 1. A bare net/http JSON handler, its own process.
	b.bareCeilings(ctx, rep)

	// 2. The reservation script alone.
	ph := luaCeiling(ctx, b.cfg, o.LuaConc, o.PhaseDuration, b.watched())
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("ceiling Lua reservation: %.0f/s %s", ph.PerSecond, ph.Error)

	// 3. The order + outbox insert alone.
	ph = insertCeiling(ctx, b.cfg, o.InsertConc, o.PhaseDuration, b.watched())
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("ceiling order+outbox insert: %.0f/s %s", ph.PerSecond, ph.Error)

	// 4. The service's sold-out peak.
	return b.soldOutPeak(ctx, rep)
}

// bareCeilings measures the bare handler closed, then open at
// --rate-fraction of its peak: the latency floor of this machine near
// capacity, to read the service's open-model p99 against.
func (b *bench) bareCeilings(ctx context.Context, rep *Report) {
	o := b.opts
	addr, pid, stop, err := startBareServer(ctx)
	if err != nil {
		rep.Ceilings = append(rep.Ceilings, Phase{Name: "bare", Error: err.Error()})
		return
	}
	defer stop()
	c := b.buyClient("http://"+addr, "1")
	defer c.Close()
	watch := b.watched(Watched{Name: "bare-server", PID: pid})
	ph := runPhase(ctx, "bare", "net/http handler answering a small JSON body to the same POST (flashbench bare-server, own process)",
		o.HTTPConc, o.PhaseDuration, OutOK, watch, httpOp(c, b.tokens.Fresh(1, 1), b.runID+"bare"))
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("ceiling bare handler: %.0f req/s", ph.PerSecond)
	if ph.PerSecond <= 0 {
		return
	}
	rate := o.RateFraction * ph.PerSecond
	ph = runOpenPhase(ctx, "bare open", fmt.Sprintf("the same at %.0f/s = %.2f × its peak, open model, latency from the intended send", rate, o.RateFraction),
		rate, o.Workers, o.PhaseDuration, OutOK, watch, httpOp(c, b.tokens.Fresh(1, 1), b.runID+"bopen"))
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("bare handler at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
}

// soldOutPeak measures the service's sold-out answers (closed model), then
// the open model at --rate-fraction of them: the sold-out path's latency
// near capacity. It returns the peak, 0 when it could not be measured.
func (b *bench) soldOutPeak(ctx context.Context, rep *Report) float64 {
	o := b.opts
	id, err := b.createSale(ctx, "PEAK-SOLDOUT-"+b.runID, 0, 1)
	if err != nil {
		rep.Probes = append(rep.Probes, Phase{Name: "service sold-out", Error: err.Error()})
		return 0
	}
	c := b.buyClient(o.URL, id)
	defer c.Close()
	ph := runPhase(ctx, "service sold-out", "POST /v1/orders on a sold-out sale (JWT, body, sold-out fast path), closed model",
		o.HTTPConc, o.PhaseDuration, OutSoldOut, b.watched(), httpOp(c, b.tokens.Fresh(1, 1), b.runID+"so"))
	rep.Probes = append(rep.Probes, ph)
	soldOut := ph.PerSecond
	b.say("peak sold-out answers: %.0f/s", ph.PerSecond)
	if soldOut > 0 {
		rate := o.RateFraction * soldOut
		ph = runOpenPhase(ctx, "service sold-out open", fmt.Sprintf("the same at %.0f/s = %.2f × that peak, open model, latency from the intended send", rate, o.RateFraction),
			rate, o.Workers, o.PhaseDuration, OutSoldOut, b.watched(), httpOp(c, b.tokens.Fresh(1, 1), b.runID+"sopen"))
		rep.Probes = append(rep.Probes, ph)
		b.say("sold-out answers at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
	}
	return soldOut
}

// peakOrders measures the service's durable orders per second, closed
// model, on a sale too large to sell out, with serve's CPU profile when
// the debug listener is known; with --off-url first the same on a second
// service whose relay and consumers are off: the baseline of their cost.
func (b *bench) peakOrders(ctx context.Context, rep *Report) {
	o := b.opts
	if o.OffURL != "" {
		ph, c := b.ordersPeak(ctx, phaseOrdersOff, o.OffURL, o.OffServicePID, "off")
		if c != nil {
			c.Close()
		}
		rep.Probes = append(rep.Probes, ph)
		b.say("peak durable orders, relay and consumers off: %.0f/s %s", ph.PerSecond, ph.Error)
	}
	profiled := b.startProfile(ctx)
	x0 := b.dbXacts(ctx)
	ph, c := b.ordersPeak(ctx, phaseOrders, o.URL, o.ServicePID, "or")
	if x1 := b.dbXacts(ctx); x0 >= 0 && x1 >= x0 && ph.OKOps > 0 {
		ph.XactsPerOp = float64(x1-x0) / float64(ph.OKOps)
	}
	rep.Probes = append(rep.Probes, ph)
	rep.Profile = profiled(&ph)
	b.say("peak durable orders: %.0f/s", ph.PerSecond)
	if c == nil {
		return
	}
	defer c.Close()
	if ph.PerSecond > 0 {
		// The order path's latency near capacity, as for the sold-out path.
		rate := o.RateFraction * ph.PerSecond
		ph = runOpenPhase(ctx, "service orders open", fmt.Sprintf("the same at %.0f/s = %.2f × that peak, open model, latency from the intended send", rate, o.RateFraction),
			rate, o.Workers, o.PhaseDuration, OutCreated, b.watched(), httpOp(c, b.tokens.Fresh(1_000_000, 1), b.runID+"oopen"))
		rep.Probes = append(rep.Probes, ph)
		b.say("durable orders at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
	}
}

// ordersPeak runs the closed order peak against the service at url (pid
// for its CPU) on a new sale; the client is nil when the sale could not be
// created.
func (b *bench) ordersPeak(ctx context.Context, name, url string, pid int, tag string) (Phase, *Client) {
	o := b.opts
	id, err := b.createSaleAt(ctx, url, "PEAK-ORDERS-"+tag+"-"+b.runID, 100_000_000, 1_000_000)
	if err != nil {
		return Phase{Name: name, Error: err.Error()}, nil
	}
	c := b.buyClient(url, id)
	what := "POST /v1/orders that each create a durable order (201 after the commit), closed model"
	if name == phaseOrdersOff {
		what += ", on a second serve with relay and consumers off (its own databases)"
	}
	ph := runPhase(ctx, name, what, o.OrdersConc, o.PhaseDuration, OutCreated, b.watchedService(pid),
		httpOp(c, b.tokens.Fresh(1_000_000, 1), b.runID+tag))
	return ph, c
}

// startProfile starts fetching serve's CPU profile for the next phase
// (whole seconds, at least one) when --debug-url is set; the function it
// returns waits for it and splits it by stage against the phase's µs of
// serve per order. Without --debug-url that function returns nil.
func (b *bench) startProfile(ctx context.Context) func(*Phase) *StageProfile {
	if b.opts.DebugURL == "" {
		return func(*Phase) *StageProfile { return nil }
	}
	secs := max(1, int(b.opts.PhaseDuration.Seconds()))
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := fetchProfile(ctx, b.opts.DebugURL, secs)
		done <- result{raw, err}
	}()
	return func(ph *Phase) *StageProfile {
		r := <-done
		p := &StageProfile{Phase: ph.Name, Seconds: secs}
		var stacks []stack
		if r.err == nil {
			stacks, r.err = parseProfile(r.raw)
		}
		if r.err != nil {
			p.Error = r.err.Error()
			return p
		}
		us, _ := perOp(ph, "flashsale serve")
		p.Stages, p.CPU = stageShares(stacks, us)
		p.File = b.keep("serve-cpu.pprof", r.raw)
		return p
	}
}

// keep writes data beside the report and returns the file's name, or ""
// when it could not (the report says so by its absence, the run goes on).
func (b *bench) keep(name string, data []byte) string {
	if err := os.MkdirAll(b.outDir, 0o755); err != nil {
		fmt.Fprintf(b.log, "cannot keep %s: %v\n", name, err)
		return ""
	}
	if err := os.WriteFile(filepath.Join(b.outDir, name), data, 0o644); err != nil {
		fmt.Fprintf(b.log, "cannot keep %s: %v\n", name, err)
		return ""
	}
	return name
}

// bareServer is the ceiling of any HTTP handler on this machine: net/http
// reading the same request and answering a small JSON body, nothing else.
func bareServer(args []string, stdout io.Writer) error {
	addr := "127.0.0.1:0"
	if len(args) > 0 {
		addr = strings.TrimPrefix(args[len(args)-1], "--addr=")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	reply := []byte(`{"status":"ok"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}

// startBareServer runs `flashbench bare-server` as a child process, like
// the service is a process of its own, and returns its address and pid.
func startBareServer(ctx context.Context) (addr string, pid int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "bare-server", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("bare-server: %w", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}
