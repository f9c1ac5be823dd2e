package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stack is the suite's private instance of scripts/stack.sh
// (STACK_NAME=Name): its addresses, and where its pid files and data live.
type Stack struct {
	Script string // path of scripts/stack.sh
	Name   string
	Log    func(format string, a ...any)

	DatabaseURLs []string // flashsale_0, flashsale_1 of the instance
	RedisAddrs   []string
	KafkaBrokers []string
	paths        map[string]string
}

// run runs stack.sh with args for this instance and returns its stdout.
func (s *Stack) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Script, args...)
	cmd.Env = append(os.Environ(), "STACK_NAME="+s.Name)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("stack.sh %s: %w\n%s", strings.Join(args, " "), err, tail(errb.String(), 2000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Up starts the instance (idempotent) and reads its addresses and paths.
func (s *Stack) Up(ctx context.Context) error {
	out, err := s.run(ctx, "up")
	if err != nil {
		return err
	}
	env := parseLines(strings.ReplaceAll(out, "export ", ""))
	s.DatabaseURLs = strings.Split(env["FLASHSALE_DATABASE_URLS"], ",")
	s.RedisAddrs = strings.Split(env["FLASHSALE_REDIS_ADDRS"], ",")
	s.KafkaBrokers = strings.Split(env["FLASHSALE_KAFKA_BROKERS"], ",")
	if out, err = s.run(ctx, "paths"); err != nil {
		return err
	}
	s.paths = parseLines(out)
	if len(s.DatabaseURLs) < 2 || len(s.RedisAddrs) != 3 || s.paths["RUN_DIR"] == "" {
		return fmt.Errorf("stack.sh printed no usable addresses: %v %v", env, s.paths)
	}
	return nil
}

// Down stops the instance (its data is kept).
func (s *Stack) Down(ctx context.Context) error {
	_, err := s.run(ctx, "down")
	return err
}

func parseLines(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Start starts one component (postgres, redis1, kafka, …) and waits until
// it answers, as stack.sh does; a failed start is tried once more, 3 s
// later (a restarted component is what the scenario needs to go on).
func (s *Stack) Start(ctx context.Context, comp string) error {
	s.Log("stack.sh start %s", comp)
	_, err := s.run(ctx, "start", comp)
	if err == nil {
		return nil
	}
	s.Log("stack.sh start %s failed, trying again in 3 s: %v", comp, err)
	if err := sleepUntil(ctx, time.Now().Add(3*time.Second)); err != nil {
		return err
	}
	_, err = s.run(ctx, "start", comp)
	return err
}

// Pid reads a component's pid file under the instance's run directory.
func (s *Stack) Pid(comp string) (int, error) {
	b, err := os.ReadFile(filepath.Join(s.paths["RUN_DIR"], comp+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Redis1Dir is node 1's data directory (its append-only files live in
// appendonlydir under it).
func (s *Stack) Redis1Dir() string {
	return strings.Split(s.paths["REDIS_DIRS"], ",")[0]
}

// Kill sends sig to a component's process, read from its pid file, and
// for SIGKILL waits until the process is gone.
func (s *Stack) Kill(comp string, sig syscall.Signal) (int, error) {
	pid, err := s.Pid(comp)
	if err != nil {
		return 0, err
	}
	s.Log("signal %s -> %s pid %d", sigName(sig), comp, pid)
	if err := syscall.Kill(pid, sig); err != nil {
		return pid, fmt.Errorf("kill %s %s pid %d: %w", sigName(sig), comp, pid, err)
	}
	if sig == syscall.SIGKILL {
		return pid, waitGone(pid, 30*time.Second)
	}
	return pid, nil
}

// PostgresImmediateStop stops PostgreSQL the way a crash does: pg_ctl -m
// immediate, as the postgres user, like stack.sh runs pg_ctl.
func (s *Stack) PostgresImmediateStop(ctx context.Context) error {
	pgctl := filepath.Join(s.paths["PG_BIN"], "pg_ctl")
	s.Log("pg_ctl -D %s -m immediate stop (SIGQUIT to the postmaster)", s.paths["PG_DATA"])
	cmd := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", pgctl, "-D", s.paths["PG_DATA"], "-m", "immediate", "-w", "-t", "30", "stop")
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl immediate stop: %w: %s", err, out)
	}
	return nil
}

// waitGone polls until pid no longer runs (a zombie counts as gone).
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pid %d still running %s after SIGKILL", pid, timeout)
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGCONT:
		return "SIGCONT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
