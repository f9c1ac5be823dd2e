package cloudevent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var envelopes = []Envelope{
	{SpecVersion: SpecVersion, ID: "0b7c5e0e-3f1a-4c7e-9d36-8a2f7f6c1d11", Source: "/flashsale/shards/3",
		Type: "flashsale.order.created", Subject: "42", Time: "2026-12-03T08:00:00.123456Z",
		DataContentType: DataContentTypeJSON, DataSchema: "https://flashsale.example/schemas/order/v1",
		Data: json.RawMessage(`{"order_id": "42", "sale_id": "7", "quantity": 1, "amount_cents": 100, "nested": {"a": [1, 2, {"b": "c"}]}}`)},
	{SpecVersion: SpecVersion, ID: "x", Source: "s", Type: "t", Time: "now", Data: json.RawMessage(`{"a":"<b>&c</b>","u":"\u2028"}`)},
	{SpecVersion: "1.0", ID: "tab\there \"quoted\" back\\slash", Source: "<html>&amp;", Type: "é ✓ \u2029", Time: "\x01\x7f",
		Subject: "bad \xff utf8", Data: json.RawMessage(`{"s":"with \"escape\""}`)},
	{SpecVersion: "1.0", ID: "nil data"},
	{},
}

// TestAppendJSONWritesWhatMarshalWrites: the relay's and the webhook's
// bytes are encoding/json's, escapes and compaction included.
func TestAppendJSONWritesWhatMarshalWrites(t *testing.T) {
	for i, e := range envelopes {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON(nil, &e)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("envelope %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
}

// TestDecodeReadsWhatUnmarshalReads over the relay's own output and over
// texts that leave the common shape.
func TestDecodeReadsWhatUnmarshalReads(t *testing.T) {
	var texts [][]byte
	for _, e := range envelopes {
		b, _ := json.Marshal(e)
		texts = append(texts, b)
	}
	texts = append(texts, []byte(` { "specversion" : "1.0", "id":"a", "data" : {"x": 1} } `),
		[]byte(`{"ID":"upper","specversion":"1.0","data":{}}`), []byte(`{"id":"a","id":"b","data":{}}`),
		[]byte(`{"id":"a","extra":true,"data":{}}`), []byte(`{"id":"a","data":null}`), []byte(`{"id":"a","data":[1]}`),
		[]byte(`{"id":"a","data":{"k":}}`), []byte(`{"id":"a"} trailing`), []byte(`{"id":1}`), []byte(`{}`), []byte(``))
	for _, b := range texts {
		checkDecode(t, b)
	}
}

// TestTheRelaysEnvelopeTakesTheFastPath: the common shape must not fall
// back to encoding/json, or the codec saves nothing.
func TestTheRelaysEnvelopeTakesTheFastPath(t *testing.T) {
	b, err := AppendJSON(nil, &envelopes[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeFast(b); err != nil {
		t.Fatalf("the relay's envelope left the fast path: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range envelopes {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte(`{"id":"a","data":{"q":"\"}"}}`))
	f.Fuzz(checkDecode)
}

func checkDecode(t *testing.T, b []byte) {
	var want Envelope
	wantErr := json.Unmarshal(b, &want)
	got, err := Decode(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", b, got, want)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("0b7c5e0e", "/flashsale/shards/3", "flashsale.order.created", "42", `{"a": "<b>", "n": [1, 2]}`)
	f.Add("\x00\xff", "\u2028", "&", "", `{}`)
	f.Fuzz(func(t *testing.T, id, source, typ, subject, data string) {
		e := Envelope{SpecVersion: SpecVersion, ID: id, Source: source, Type: typ, Subject: subject, Time: id,
			DataContentType: DataContentTypeJSON, Data: json.RawMessage(data)}
		want, wantErr := json.Marshal(e)
		got, err := AppendJSON(nil, &e)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %q (%v), encoding/json %q (%v)", got, err, want, wantErr)
		}
	})
}

func BenchmarkEnvelope(b *testing.B) {
	e := envelopes[0]
	text, _ := json.Marshal(e)
	b.Run("encode/encoding-json", func(b *testing.B) {
		for range b.N {
			_, _ = json.Marshal(e)
		}
	})
	b.Run("encode/append", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf, _ = AppendJSON(buf[:0], &e)
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		for range b.N {
			var d Envelope
			_ = json.Unmarshal(text, &d)
		}
	})
	b.Run("decode/fast", func(b *testing.B) {
		for range b.N {
			_, _ = Decode(text)
		}
	})
}
