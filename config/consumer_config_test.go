package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestConsumerSettings(t *testing.T) {
	base := map[string]string{"FLASHSALE_JWT_SECRET": "0123456789abcdef"}
	c, err := load(t, nil, base)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ConsumersEnabled || c.ConsumerMaxAttempts != 5 || c.DeadLetterTopic != "flashsale.orders.dlq" || c.WebhookURL != "" || c.WebhookTimeout != 5*time.Second ||
		c.InboxRetention != 168*time.Hour {
		t.Errorf("defaults: %d %q %q %s %s", c.ConsumerMaxAttempts, c.DeadLetterTopic, c.WebhookURL, c.WebhookTimeout, c.InboxRetention)
	}
	env := map[string]string{"FLASHSALE_JWT_SECRET": "0123456789abcdef", "FLASHSALE_WEBHOOK_URL": "https://hooks.example/x",
		"FLASHSALE_WEBHOOK_SECRET": "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ="}
	c, err = load(t, []string{"--consumer-max-attempts", "7"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConsumerMaxAttempts != 7 || c.WebhookSecret != "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ=" {
		t.Errorf("got %d %q", c.ConsumerMaxAttempts, c.WebhookSecret)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ=") || !strings.Contains(buf.String(), "hooks.example") {
		t.Errorf("log: %s", buf.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--consumer-max-attempts", "0"}, "consumer-max-attempts"},
		{[]string{"--dead-letter-topic", "flashsale.orders"}, "dead-letter-topic"},
		{[]string{"--dead-letter-topic", ""}, "dead-letter-topic"},
		{[]string{"--webhook-url", "ftp://x", "--webhook-secret", "0123456789abcdef"}, "webhook-url"},
		{[]string{"--webhook-url", "https://x/hook", "--webhook-secret", "short"}, "webhook-secret"},
		// A plain secret of the old kind is refused, not used as raw key bytes.
		{[]string{"--webhook-url", "https://x/hook", "--webhook-secret", "webhook-secret-0123456789"}, "whsec_"},
		{[]string{"--webhook-url", "https://x/hook", "--webhook-secret", "whsec_c2hvcnQ="}, "webhook-secret"}, // 5 bytes
		{[]string{"--webhook-url", "https://x/hook", "--webhook-secret", "whsec_not base64!"}, "webhook-secret"},
		{[]string{"--webhook-timeout", "0s"}, "webhook-timeout"},
		{[]string{"--inbox-retention", "0s"}, "inbox-retention"},
	} {
		_, err := load(t, tc.args, base)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
