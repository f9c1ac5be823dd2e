package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a flashsale process the suite started (serve or consume), which
// it can kill, stop, continue and start again with the same arguments.
type Proc struct {
	Name string
	bin  string
	args []string
	env  []string
	log  string // file its stdout and stderr go to
	say  func(format string, a ...any)

	cmd  *exec.Cmd
	done chan struct{}
}

// NewProc describes a process; Start runs it.
func NewProc(name, bin string, args, env []string, logPath string, say func(string, ...any)) *Proc {
	return &Proc{Name: name, bin: bin, args: args, env: env, log: logPath, say: say}
}

// Start runs the process (again, after a kill).
func (p *Proc) Start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// A suite killed itself must not leave serve processes selling on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.say("started %s pid %d (%s %v)", p.Name, cmd.Process.Pid, p.bin, p.args)
	return nil
}

// Pid is the running process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig; after SIGKILL it waits until the process has exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.say("signal %s -> %s pid %d", sigName(sig), p.Name, p.Pid())
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sigName(sig), p.Name, err)
	}
	if sig != syscall.SIGKILL {
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s pid %d did not exit after SIGKILL", p.Name, p.Pid())
	}
}

// Stop ends the process: SIGCONT (in case it is stopped), SIGTERM, and
// SIGKILL when it has not exited within timeout.
func (p *Proc) Stop(timeout time.Duration) {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.Signal(syscall.SIGKILL)
	}
}

// Instance is one serve process and the address it listens on.
type Instance struct {
	*Proc
	URL string
}

// freePort finds a loopback port nobody listens on, below the kernel's
// ephemeral range: buyers dialing a killed serve's port again and again
// could otherwise be given that very port as their source port (a TCP
// self-connect) and hold it, so that the restarted serve cannot bind.
func freePort() (int, error) {
	first := 20000 + rand.IntN(4000)
	for port := first; port < first+1000; port++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in 127.0.0.1:%d-%d", first, first+999)
}

// ready reports whether /readyz answers 200.
func ready(ctx context.Context, c *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls every instance's /readyz until all answer 200, and
// returns how long that took.
func WaitReady(ctx context.Context, insts []*Instance, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, in := range insts {
		for !ready(ctx, c, in.URL) {
			if time.Since(start) > timeout {
				return time.Since(start), fmt.Errorf("%s (%s) not ready within %s", in.Name, in.URL, timeout)
			}
			select {
			case <-ctx.Done():
				return time.Since(start), ctx.Err()
			case <-in.done:
				return time.Since(start), errors.New(in.Name + " exited; see " + in.log)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return time.Since(start), nil
}
