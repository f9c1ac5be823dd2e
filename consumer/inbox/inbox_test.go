package inbox_test

import (
	"errors"
	"testing"
	"time"

	"flashsale/consumer/inbox"
)

func TestParseReadsTheContractEnvelope(t *testing.T) {
	ev, err := inbox.Parse([]byte(`{"specversion":"1.0","id":"0B5C1D0E-7C4F-4A53-9D0E-3F8F2F7B9A10","source":"/flashsale/shards/7",
		"type":"flashsale.order.created","subject":"250092227018125313","time":"2026-11-22T02:57:13.409845Z",
		"datacontenttype":"application/json","dataschema":"https://flashsale.example/schemas/order-event/v1",
		"data":{"order_id":"250092227018125313","quantity":2},"unknown":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10" || ev.Type != "flashsale.order.created" || ev.Subject != "250092227018125313" ||
		ev.Source != "/flashsale/shards/7" || !ev.Time.Equal(time.Date(2026, 11, 22, 2, 57, 13, 409845000, time.UTC)) ||
		string(ev.Data) != `{"order_id":"250092227018125313","quantity":2}` {
		t.Fatalf("%+v", ev)
	}
}

func TestParseRefusesWhatIsNoEvent(t *testing.T) {
	const ok = `"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"2026-11-22T02:57:13Z"`
	for _, v := range []string{
		``, `{`, `[]`, `{` + ok + `}`, // no data
		`{` + ok + `,"data":null}`,
		`{"specversion":"0.3","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"not-a-uuid","source":"/s","type":"t","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"yesterday","data":{}}`,
	} {
		if _, err := inbox.Parse([]byte(v)); !errors.Is(err, inbox.ErrInvalidEvent) {
			t.Errorf("%s: %v", v, err)
		}
	}
}
