package config

import (
	"flag"
	"strings"
	"testing"
)

func loadFor(cmd Command, args []string, env map[string]string) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(string(cmd), flag.ContinueOnError)
	c := RegisterFor(fs, cmd)
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	return c, fs, Load(fs, c, func(k string) string { return env[k] })
}

// TestToolsNeedNoJWTSecret: consume, relay and migrate verify no tokens,
// so they start without a secret, while serve still refuses a missing or
// weak one.
func TestToolsNeedNoJWTSecret(t *testing.T) {
	for _, cmd := range []Command{Consume, Relay, Migrate} {
		if _, _, err := loadFor(cmd, nil, nil); err != nil {
			t.Errorf("%s without a JWT secret: %v", cmd, err)
		}
	}
	for _, secret := range []string{"", "short"} {
		_, _, err := loadFor(Serve, nil, map[string]string{"FLASHSALE_JWT_SECRET": secret})
		if err == nil || !strings.Contains(err.Error(), "jwt-secret") {
			t.Errorf("serve with secret %q: error %v, want one naming jwt-secret", secret, err)
		}
	}
}

// TestCommandsReadOnlyTheirSettings: a command registers, reads and
// validates only its own settings, so a bad value of another's is no
// concern of it.
func TestCommandsReadOnlyTheirSettings(t *testing.T) {
	_, fs, err := loadFor(Migrate, nil, map[string]string{"FLASHSALE_USER_RATE": "0", "FLASHSALE_WEBHOOK_URL": "ftp://x"})
	if err != nil {
		t.Fatalf("migrate judged settings it does not read: %v", err)
	}
	if fs.Lookup("jwt-secret") != nil || fs.Lookup("user-rate") != nil || fs.Lookup("database-urls") == nil {
		t.Error("migrate's flags are not the settings it reads")
	}
	c, fs, err := loadFor(Consume, []string{"--consumer-max-attempts", "0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "consumer-max-attempts") {
		t.Errorf("consume accepted consumer-max-attempts 0: %v", err)
	}
	if fs.Lookup("jwt-secret") != nil || fs.Lookup("redis-addrs") != nil || c.RedisAddrs != nil {
		t.Error("consume reads Redis or JWT settings it never uses")
	}
	if _, _, err := loadFor(Relay, []string{"--relay-batch", "0"}, nil); err == nil || !strings.Contains(err.Error(), "relay-batch") {
		t.Errorf("relay accepted relay-batch 0: %v", err)
	}
	if _, _, err := loadFor(Consume, []string{"--consumer-batch", "0"}, nil); err == nil || !strings.Contains(err.Error(), "consumer-batch") {
		t.Errorf("consume accepted consumer-batch 0: %v", err)
	}
	if c, _, err := loadFor(Consume, []string{"--consumer-batch", "512"}, nil); err != nil || c.ConsumerBatch != 512 {
		t.Errorf("consumer-batch 512 read as %d (%v)", c.ConsumerBatch, err)
	}
}
