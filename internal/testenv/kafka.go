package testenv

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/config"
)

// Topic names a topic private to the test and points cfg at it; the relay
// creates it, and it is deleted when the test ends so the broker does not
// accumulate one per run.
func Topic(t testing.TB, cfg *config.Config) string {
	t.Helper()
	topic := "test-" + randHex(6)
	cfg.KafkaTopic = topic
	cfg.KafkaPartitions = 2
	cfg.DeadLetterTopic = topic + ".dlq"
	cfg.ConsumerGroupPrefix = topic
	t.Cleanup(func() { deleteTopic(t, cfg.KafkaBrokers[0], topic, topic+".dlq") })
	return topic
}

func deleteTopic(t testing.TB, broker string, topics ...string) {
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", broker)
	if err != nil {
		t.Logf("testenv: delete topics %v: %v", topics, err)
		return
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return
	}
	cc, err := d.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return
	}
	defer cc.Close()
	_ = cc.DeleteTopics(topics...)
}
