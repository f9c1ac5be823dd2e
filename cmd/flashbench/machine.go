package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the run happens.
func (b *bench) machine(ctx context.Context) map[string]string {
	m := map[string]string{
		"cpus":               strconv.Itoa(runtime.NumCPU()),
		"gomaxprocs":         strconv.Itoa(runtime.GOMAXPROCS(0)),
		"go":                 runtime.Version(),
		"kernel":             readTrim("/proc/sys/kernel/osrelease"),
		"loadavg_start":      readTrim("/proc/loadavg"),
		"cpu_pressure_start": firstLine(readTrim("/proc/pressure/cpu")),
	}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m["cpu"] = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		m["memory"] = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	var v string
	if err := b.pools[0].QueryRow(ctx, "SHOW server_version").Scan(&v); err == nil {
		m["postgresql"] = v
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		if v, ok := keyValue(info, "redis_version"); ok {
			m["redis"] = v
		}
	}
	for _, n := range b.opts.Notes {
		if k, v, ok := strings.Cut(n, "="); ok {
			m[k] = v
		}
	}
	return m
}

// procField is the first value of key in a "key: value" file of /proc.
func procField(path, key string) (string, bool) {
	s, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return keyValue(string(s), key)
}

// keyValue is the first value of key in "key: value" (or "key:value")
// lines.
func keyValue(text, key string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
