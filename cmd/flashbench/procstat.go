package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux ABI Go runs on.
const clockTicks = 100

// ProcSample is one reading of a process (or a process and its children).
type ProcSample struct {
	At       time.Time
	CPU      time.Duration // user + system, children reaped and alive included for a tree
	RSSBytes int64
	Procs    int
}

// procStat reads utime+stime (and cutime+cstime: CPU of reaped children)
// and the parent pid from /proc/<pid>/stat.
func procStat(pid int) (cpu, reaped time.Duration, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	return parseStat(b)
}

// parseStat parses the text of /proc/<pid>/stat (proc(5)).
func parseStat(b []byte) (cpu, reaped time.Duration, ppid int, err error) {
	// The command name may hold spaces and parentheses; fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("stat: malformed")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("stat: short")
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	tick := time.Second / clockTicks
	return time.Duration(num(14)+num(15)) * tick, time.Duration(num(16)+num(17)) * tick, int(num(4)), nil
}

// procRSS reads VmRSS from /proc/<pid>/status, in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, nil // kernel threads and zombies have no VmRSS
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, _, ppid, err := procStat(p); err == nil && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// sampleProc reads pid, and with tree its direct children too (PostgreSQL
// runs a process per connection): their CPU and memory add up, and the CPU
// of children already reaped is in the parent's cutime. With match, only
// the children whose command line holds one of the words count (PostgreSQL
// names each backend's database there), and reaped children do not.
func sampleProc(pid int, tree bool, match []string) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	cpu, reaped, _, err := procStat(pid)
	if err != nil {
		return s, err
	}
	s.CPU, s.Procs = cpu, 1
	if tree && len(match) == 0 {
		s.CPU += reaped
	}
	s.RSSBytes, _ = procRSS(pid)
	if tree {
		for _, c := range children(pid) {
			if len(match) > 0 && !cmdlineHas(c, match) {
				continue
			}
			if ccpu, creaped, _, err := procStat(c); err == nil {
				s.CPU += ccpu + creaped
				rss, _ := procRSS(c)
				s.RSSBytes += rss
				s.Procs++
			}
		}
	}
	return s, nil
}

func cmdlineHas(pid int, words []string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, w := range words {
		if bytes.Contains(b, []byte(w)) {
			return true
		}
	}
	return false
}

// selfCPU is this process's user + system time (getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Watched is a process whose CPU and memory the report shows.
type Watched struct {
	Name  string
	PID   int      // 0: this process
	Tree  bool     // add the direct children
	Match []string // with Tree: only children whose command line holds one of these
}

// ProcUsage is one process's use over a phase.
type ProcUsage struct {
	Name       string      `json:"name"`
	PID        int         `json:"pid"`
	Procs      int         `json:"processes"`
	CPUSeconds float64     `json:"cpu_seconds"`
	Cores      float64     `json:"cores"`        // CPU seconds per wall second
	MachinePct float64     `json:"machine_pct"`  // share of all cores
	RSSStartMB float64     `json:"rss_start_mb"` // at the start of the phase
	RSSEndMB   float64     `json:"rss_end_mb"`   // at its end
	RSSPeakMB  float64     `json:"rss_peak_mb"`  // highest sample
	Error      string      `json:"error,omitempty"`
	Series     []ProcPoint `json:"series,omitempty"`
}

// ProcPoint is one second of a process's use.
type ProcPoint struct {
	T     float64 `json:"t_s"`
	Cores float64 `json:"cores"`
	RSSMB float64 `json:"rss_mb"`
}

// Sampler reads the watched processes once a second.
type Sampler struct {
	watched []Watched
	every   time.Duration
	mu      sync.Mutex
	samples [][]ProcSample
	errs    []error
	stop    chan struct{}
	done    chan struct{}
}

func (w Watched) sample() (ProcSample, error) {
	if w.PID == 0 {
		rss, _ := procRSS(os.Getpid())
		return ProcSample{At: time.Now(), CPU: selfCPU(), RSSBytes: rss, Procs: 1}, nil
	}
	return sampleProc(w.PID, w.Tree, w.Match)
}

// StartSampler takes a first sample now and then one every interval until Stop.
func StartSampler(watched []Watched, every time.Duration) *Sampler {
	s := &Sampler{watched: watched, every: every, samples: make([][]ProcSample, len(watched)),
		errs: make([]error, len(watched)), stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.take()
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *Sampler) take() {
	for i, w := range s.watched {
		smp, err := w.sample()
		s.mu.Lock()
		if err != nil {
			if s.errs[i] == nil {
				s.errs[i] = err
			}
		} else {
			s.samples[i] = append(s.samples[i], smp)
		}
		s.mu.Unlock()
	}
}

// Stop takes a last sample and returns each process's use over the span.
func (s *Sampler) Stop(ncpu int) []ProcUsage {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProcUsage, 0, len(s.watched))
	for i, w := range s.watched {
		pid := w.PID
		if pid == 0 {
			pid = os.Getpid()
		}
		out = append(out, usageOf(w.Name, pid, s.samples[i], s.errs[i], ncpu))
	}
	return out
}

func usageOf(name string, pid int, smp []ProcSample, err error, ncpu int) ProcUsage {
	u := ProcUsage{Name: name, PID: pid}
	if len(smp) < 2 {
		if err != nil {
			u.Error = err.Error()
		} else {
			u.Error = "fewer than two samples"
		}
		return u
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	first, last := smp[0], smp[len(smp)-1]
	wall := last.At.Sub(first.At).Seconds()
	u.CPUSeconds = (last.CPU - first.CPU).Seconds()
	if wall > 0 {
		u.Cores = u.CPUSeconds / wall
		u.MachinePct = 100 * u.Cores / float64(max(1, ncpu))
	}
	u.RSSStartMB, u.RSSEndMB, u.Procs = mb(first.RSSBytes), mb(last.RSSBytes), last.Procs
	for k, x := range smp {
		u.RSSPeakMB = max(u.RSSPeakMB, mb(x.RSSBytes))
		if k > 0 {
			dt := x.At.Sub(smp[k-1].At).Seconds()
			if dt > 0 {
				u.Series = append(u.Series, ProcPoint{T: x.At.Sub(first.At).Seconds(),
					Cores: max(0, (x.CPU-smp[k-1].CPU).Seconds()/dt), RSSMB: mb(x.RSSBytes)})
			}
		}
	}
	if err != nil {
		u.Error = "some samples failed: " + err.Error()
	}
	return u
}
