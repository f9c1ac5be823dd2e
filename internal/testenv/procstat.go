package testenv

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const clockTick = 10 * time.Millisecond

// PostgresCPU is the CPU time used so far by every backend connected to the
// databases at urls (but the one asking), by pid; nil when PostgreSQL's
// processes cannot be read in /proc (it runs elsewhere).
func PostgresCPU(tb testing.TB, urls []string) map[int]time.Duration {
	tb.Helper()
	out := map[int]time.Duration{}
	for _, u := range urls {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			tb.Fatal(err)
		}
		rows, _ := conn.Query(context.Background(),
			"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		_ = conn.Close(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		for _, pid := range pids {
			t, ok := procCPU(int(pid))
			if !ok {
				return nil
			}
			out[int(pid)] = t
		}
	}
	return out
}

// procCPU reads utime + stime of a process from /proc.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * clockTick, true
}

// SelfCPU is the CPU time this process (load generator and server alike)
// has used. Unlike a rate it hardly moves when other tenants of a shared
// machine take CPU away.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RedisCPU is the CPU time the Redis server has used (INFO cpu): the whole
// server, so other clients of a shared server count too.
func RedisCPU(tb testing.TB, rdb *redis.Client) time.Duration {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
