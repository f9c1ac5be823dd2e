package main

import "testing"

// TestKeyValueReadsProcAndRedisInfoLines reads the machine's description
// from /proc's "key<tab>: value" lines and Redis INFO's "key:value\r" ones.
func TestKeyValueReadsProcAndRedisInfoLines(t *testing.T) {
	cpuinfo := "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.50GHz\nmodel name\t: other\n"
	if v, ok := keyValue(cpuinfo, "model name"); !ok || v != "Intel(R) Xeon(R) CPU @ 2.50GHz" {
		t.Errorf("cpuinfo model name: %q %v", v, ok)
	}
	if v, ok := keyValue("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n", "redis_version"); !ok || v != "7.0.15" {
		t.Errorf("redis_version: %q %v", v, ok)
	}
	if _, ok := keyValue("MemFree: 1 kB\n", "MemTotal"); ok {
		t.Error("found a key that is not there")
	}
}
