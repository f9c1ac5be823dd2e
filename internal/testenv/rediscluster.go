package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three masters of the test's own (no
// replicas), each a redis-server in cluster mode with its data in a
// temporary directory, as scripts/scale.sh runs the stock cluster.
type RedisCluster struct {
	Addrs []string
	cmds  []*osexec.Cmd
}

// StartRedisCluster starts a private three-master Redis Cluster, stopped
// after the test, and waits until every slot is served. It skips the test
// only when redis-server or redis-cli is not installed.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := osexec.LookPath(bin); err != nil {
			t.Skipf("Redis Cluster tests need %s (apt-get install -y redis-server), not found: %v", bin, err)
		}
	}
	c := &RedisCluster{}
	t.Cleanup(c.stop)
	dir := t.TempDir()
	for i, port := range clusterPorts(t, 3) {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		c.start(t, d, port)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	out, err := osexec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitReady(t)
	return c
}

// clusterPorts picks n free ports whose cluster bus port (port + 10000)
// is free too, below the kernel's ephemeral range (see scripts/stack.sh)
// and clear of both stacks' fixed ports.
func clusterPorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port pair for a Redis Cluster node")
		}
		p := 10000 + rand.IntN(12000)
		if free(p) && free(p+10000) {
			ports = append(ports, p)
		}
	}
	return ports
}

func free(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

func (c *RedisCluster) start(t testing.TB, dir string, port int) {
	t.Helper()
	cmd := osexec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	c.cmds = append(c.cmds, cmd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.Addrs = append(c.Addrs, addr)
	node := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer node.Close()
	waitFor(t, addr+" answering", func() error { return node.Ping(context.Background()).Err() })
}

// waitReady waits until every node reports the cluster ok and a cluster
// client can write a key on each master.
func (c *RedisCluster) waitReady(t testing.TB) {
	t.Helper()
	for _, addr := range c.Addrs {
		node := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		waitFor(t, addr+" cluster_state:ok", func() error {
			info, err := node.ClusterInfo(context.Background()).Result()
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = fmt.Errorf("cluster not ok yet")
			}
			return err
		})
		_ = node.Close()
	}
	cc := c.Client()
	defer cc.Close()
	waitFor(t, "cluster client writing on every master", func() error {
		return cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
			return n.Ping(ctx).Err()
		})
	})
}

// Client is a new cluster client of the test cluster.
func (c *RedisCluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
}

func (c *RedisCluster) stop() {
	for _, cmd := range c.cmds {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
