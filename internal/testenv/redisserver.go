package testenv

import (
	"context"
	"math/rand/v2"
	"net"
	osexec "os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server of the test's own, on a free loopback port
// with its data (AOF on, fsync every second, as node 1 runs) in a
// temporary directory: unlike the shared nodes, a test may kill it.
type RedisServer struct {
	t    testing.TB
	Addr string
	Dir  string
	port int
	args []string
	cmd  *osexec.Cmd
}

// StartRedis starts a private redis-server, killed after the test; args
// are more redis-server options, later ones winning (e.g. "--appendfsync",
// "always").
func StartRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	if _, err := osexec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	port := FreePort(t)
	s := &RedisServer{t: t, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: t.TempDir(), port: port, args: args}
	t.Cleanup(s.Kill)
	s.Start()
	return s
}

// FreePort finds a loopback port nobody listens on, below the kernel's
// ephemeral range (32768-60999): a server a
// test restarts on its port could otherwise find it taken by a client that
// dialed it while it was down and was given that very port as its source
// port (a TCP self-connect).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		if p := 22000 + rand.IntN(10000); free(p) {
			return p
		}
	}
	t.Fatal("no free loopback port in 22000-31999")
	return 0
}

// Start starts the server on its port and directory, loading what its AOF
// holds, and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = osexec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.Dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no")
	s.cmd.Args = append(s.cmd.Args, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would, and reaps it.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server must run to die
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the running server: SIGSTOP pauses it (a server
// that answers nothing), SIGCONT resumes it.
func (s *RedisServer) Signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}
