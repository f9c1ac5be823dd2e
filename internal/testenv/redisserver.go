package testenv

import (
	"context"
	"net"
	osexec "os/exec"
	"strconv"
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
	cmd  *osexec.Cmd
}

// StartRedis starts a private redis-server, killed after the test.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := osexec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &RedisServer{t: t, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: t.TempDir(), port: port}
	t.Cleanup(s.Kill)
	s.Start()
	return s
}

// Start starts the server on its port and directory, loading what its AOF
// holds, and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = osexec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.Dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no")
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
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
