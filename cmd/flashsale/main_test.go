package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"flashsale/auth"
	"flashsale/config"
	"flashsale/internal/testenv"
)

func noEnv(string) string { return "" }

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, noEnv, &out, &out); err != nil {
		t.Fatal(err)
	}
	fs, _ := newFlagSet("x", config.Serve, &out)
	fs.VisitAll(func(f *flag.Flag) {
		env := "FLASHSALE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if !strings.Contains(out.String(), "-"+f.Name) || !strings.Contains(out.String(), env) {
			t.Errorf("--help does not list %s (%s)", f.Name, env)
		}
	})
}

func TestBadSettingStopsWithItsName(t *testing.T) {
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad duration":    {[]string{"serve", "--payment-window", "soon"}, nil, "payment-window"},
		"missing secret":  {[]string{"serve"}, nil, "jwt-secret"},
		"bad env value":   {[]string{"serve"}, map[string]string{"FLASHSALE_SHARDS": "many"}, "FLASHSALE_SHARDS"},
		"too many shards": {[]string{"serve", "--shards", "2000"}, nil, "shards"},
		"grace too short": {[]string{"serve", "--reservation-grace", "1s"}, nil, "reservation-grace"},
		"unknown command": {[]string{"sell"}, nil, "unknown command"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestTokenMintsAVerifiableAdminToken(t *testing.T) {
	var out bytes.Buffer
	env := func(k string) string {
		if k == "FLASHSALE_JWT_SECRET" {
			return testenv.JWTSecret
		}
		return ""
	}
	if err := run(context.Background(), []string{"token", "--sub", "ops", "--admin", "--ttl", "1m"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	c, err := auth.NewVerifier(testenv.JWTSecret).Verify(strings.TrimSpace(out.String()))
	if err != nil || c.Subject != "ops" || !c.Admin {
		t.Fatalf("claims %+v, err %v", c, err)
	}
}

// TestServeDrainsInFlightRequestsOnSIGTERM runs the real binary, starts a
// request whose body is still arriving, sends SIGTERM, then finishes the
// body: the request completes with 201, new connections are refused, and
// the process exits cleanly.
func TestServeDrainsInFlightRequestsOnSIGTERM(t *testing.T) {
	cfg := testenv.Config(t, 4)
	bin := filepath.Join(t.TempDir(), "flashsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, "serve", "--http-addr", addr, "--shards", "4", "--migrate-on-start=false", "--relay-enabled=false", "--consumers-enabled=false",
		"--database-urls", strings.Join(cfg.DatabaseURLs, ","), "--redis-prefix", cfg.RedisPrefix)
	cmd.Env = append(os.Environ(), "FLASHSALE_JWT_SECRET="+testenv.JWTSecret)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitUp(t, addr)

	sale := createSale(t, addr)
	body := fmt.Sprintf(`{"sale_id":%q,"quantity":1}`, sale)
	tok, _ := auth.Mint(testenv.JWTSecret, "slow-buyer", false, time.Hour, time.Now())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Idempotency-Key: k1\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body[:5])
	time.Sleep(200 * time.Millisecond) // the handler is now reading the body
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}
	fmt.Fprint(conn, body[5:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v\n%s", err, logs.String())
	}
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("in-flight request answered %d", resp.StatusCode)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15 s after SIGTERM")
	}
}

func waitUp(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get("http://" + addr + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("serve never became ready")
}

func createSale(t *testing.T, addr string) string {
	t.Helper()
	tok, _ := auth.Mint(testenv.JWTSecret, "admin", true, time.Hour, time.Now())
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"sku":"S","title":"T","price_cents":1,"currency":"EUR","stock":5,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/admin/sales", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create sale: %d %s", resp.StatusCode, buf.String())
	}
	_, rest, _ := strings.Cut(buf.String(), `"id":"`)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}
