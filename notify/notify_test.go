package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/notify"
)

// TestMain fails the package when a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret is a Standard Webhooks secret: whsec_ + base64 of a 32-byte key.
const secret = "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ="

// key is secret's key.
var key = []byte("flashsale-test-webhook-key-32byt")

// hit is one request the receiver saw.
type hit struct {
	id, ts, sig string
	body        []byte
	status      int
}

// receiver is the test's webhook peer: it answers each request with the
// next scripted status for its Webhook-Id (200 when none is left).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	script map[string][]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{script: map[string][]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hit{id: req.Header.Get("Webhook-Id"), ts: req.Header.Get("Webhook-Timestamp"), sig: req.Header.Get("Webhook-Signature"), body: body, status: 200}
		r.mu.Lock()
		if s := r.script[h.id]; len(s) > 0 {
			h.status, r.script[h.id] = s[0], s[1:]
		}
		r.hits = append(r.hits, h)
		r.mu.Unlock()
		w.WriteHeader(h.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// answer scripts the statuses of the next requests for id.
func (r *receiver) answer(id string, statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script[id] = statuses
}

func (r *receiver) all() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

// validSignature verifies the request as a receiver would, with the
// official Standard Webhooks library and the whsec_ secret as configured.
func validSignature(h hit) bool {
	return verifyWith(secret, h, h.body) == nil
}

func verifyWith(secret string, h hit, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("Webhook-Id", h.id)
	hdr.Set("Webhook-Timestamp", h.ts)
	hdr.Set("Webhook-Signature", h.sig)
	return wh.Verify(body, hdr)
}

func newSender(t *testing.T, url string) *notify.Sender {
	t.Helper()
	s, err := notify.New(notify.Config{URL: url, Secret: secret, MaxTries: 3, BackoffMin: 5 * time.Millisecond,
		Timeout: 2 * time.Second, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(typ string) inbox.Event {
	order := strconv.FormatInt(time.Now().UnixNano(), 10)
	return inbox.Event{ID: testenv.EventID(), Source: "/flashsale/shards/3", Type: "flashsale.order." + typ, Subject: order,
		Time: time.Now().UTC(), Data: json.RawMessage(`{"schema_version":1,"order_id":"` + order + `","status":"paid"}`)}
}

func db(t *testing.T) *pgxpool.Pool {
	return testenv.Pools(t, testenv.Config(t, 2))[0]
}

func sentRow(t *testing.T, db *pgxpool.Pool, id string) (status, tries int, ok bool) {
	t.Helper()
	err := db.QueryRow(context.Background(), `SELECT status_code, tries FROM notifications WHERE event_id = $1 AND sent_at IS NOT NULL`, id).Scan(&status, &tries)
	return status, tries, err == nil
}

func TestSignedCloudEventIsPostedOnce(t *testing.T) {
	pg, rcv := db(t), newReceiver(t)
	s := newSender(t, rcv.srv.URL)
	ev := event("paid")
	for i := range 2 {
		applied, err := inbox.Apply(context.Background(), pg, "notify", ev, s)
		if err != nil || applied != (i == 0) {
			t.Fatalf("delivery %d: applied %v, err %v", i, applied, err)
		}
	}
	hits := rcv.all()
	if len(hits) != 1 {
		t.Fatalf("%d requests, want 1", len(hits))
	}
	h := hits[0]
	if !validSignature(h) || h.id != ev.ID {
		t.Fatalf("bad request: id %s sig %s", h.id, h.sig)
	}
	if !notify.Verify(key, h.id, h.ts, h.sig, h.body, time.Now(), time.Minute) ||
		!notify.Verify(key, h.id, h.ts, "v1,b3RoZXI= "+h.sig, h.body, time.Now(), time.Minute) {
		t.Error("Verify refuses a good request")
	}
	if notify.Verify(key, h.id, h.ts, h.sig, append(h.body, ' '), time.Now(), time.Minute) ||
		notify.Verify(key, h.id+"x", h.ts, h.sig, h.body, time.Now(), time.Minute) ||
		notify.Verify(key, h.id, h.ts, h.sig, h.body, time.Now().Add(time.Hour), time.Minute) {
		t.Error("Verify accepts a changed body or id, or a stale timestamp")
	}
	if ts, _ := strconv.ParseInt(h.ts, 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("timestamp %s", h.ts)
	}
	var body struct {
		SpecVersion, ID, Source, Type, Subject, Time string
		Data                                         json.RawMessage
	}
	if err := json.Unmarshal(h.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.SpecVersion != "1.0" || body.ID != ev.ID || body.Type != ev.Type || body.Subject != ev.Subject ||
		body.Source != ev.Source || string(body.Data) != string(ev.Data) {
		t.Errorf("body %s", h.body)
	}
	if status, tries, ok := sentRow(t, pg, ev.ID); !ok || status != 200 || tries != 1 {
		t.Errorf("notifications row: %d %d %v", status, tries, ok)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	pg, rcv := db(t), newReceiver(t)
	s := newSender(t, rcv.srv.URL)
	ev := event("created")
	rcv.answer(ev.ID, 500, 503)
	if _, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err != nil {
		t.Fatal(err)
	}
	hits := rcv.all()
	if len(hits) != 3 || hits[2].status != 200 {
		t.Fatalf("%d requests", len(hits))
	}
	for _, h := range hits {
		if !validSignature(h) || h.id != ev.ID {
			t.Errorf("try with id %s has a bad signature", h.id)
		}
	}
	if status, tries, ok := sentRow(t, pg, ev.ID); !ok || status != 200 || tries != 3 {
		t.Errorf("notifications row: %d %d %v", status, tries, ok)
	}
}

// TestFailedDeliveryRollsBack exhausts the tries, then refuses with a 400:
// the attempt fails, nothing is recorded, and the next attempt posts again.
func TestFailedDeliveryRollsBack(t *testing.T) {
	pg, rcv := db(t), newReceiver(t)
	s := newSender(t, rcv.srv.URL)
	ev := event("expired")
	rcv.answer(ev.ID, 500, 502, 504, 400)
	for i, want := range []int{3, 4} {
		if _, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err == nil {
			t.Fatalf("attempt %d succeeded", i)
		}
		if n := len(rcv.all()); n != want {
			t.Fatalf("attempt %d: %d requests, want %d (a 400 is not retried)", i, n, want)
		}
		if _, _, ok := sentRow(t, pg, ev.ID); ok {
			t.Fatal("a failed delivery was recorded")
		}
	}
	if applied, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err != nil || !applied {
		t.Fatalf("third attempt: %v %v", applied, err)
	}
	if status, tries, ok := sentRow(t, pg, ev.ID); !ok || status != 200 || tries != 1 {
		t.Errorf("notifications row: %d %d %v", status, tries, ok)
	}
}

// TestRecordedNotificationIsNotSentAgain posts nothing for an event the
// notifications table holds, even when the inbox no longer does, and
// nothing for event types that are not order events.
func TestRecordedNotificationIsNotSentAgain(t *testing.T) {
	pg, rcv := db(t), newReceiver(t)
	s := newSender(t, rcv.srv.URL)
	ev := event("cancelled")
	if _, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Exec(context.Background(), `DELETE FROM inbox`); err != nil {
		t.Fatal(err)
	}
	if applied, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err != nil || !applied {
		t.Fatalf("%v %v", applied, err)
	}
	other := event("cancelled")
	other.Type = "flashsale.sale.created"
	if _, err := inbox.Apply(context.Background(), pg, "notify", other, s); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.all()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// TestStandardWebhooksLibraryVerifiesTheRequest: the official Standard
// Webhooks library accepts the posted request as sent and refuses it with
// its body, id or secret changed.
func TestStandardWebhooksLibraryVerifiesTheRequest(t *testing.T) {
	pg, rcv := db(t), newReceiver(t)
	s := newSender(t, rcv.srv.URL)
	ev := event("created")
	if _, err := inbox.Apply(context.Background(), pg, "notify", ev, s); err != nil {
		t.Fatal(err)
	}
	h := rcv.all()[0]
	if err := verifyWith(secret, h, h.body); err != nil {
		t.Fatalf("the library refuses the webhook: %v (signature %q)", err, h.sig)
	}
	other := h
	other.id = testenv.EventID()
	if verifyWith(secret, h, append(h.body, ' ')) == nil || verifyWith(secret, other, h.body) == nil ||
		verifyWith("whsec_b3RoZXIta2V5LW9mLTI0LWJ5dGVzLWxvbmc=", h, h.body) == nil {
		t.Error("the library accepts a changed body, id or secret")
	}
}

func TestNewChecksItsConfig(t *testing.T) {
	for _, c := range []notify.Config{
		{URL: "ftp://x", Secret: secret},
		{URL: "http://", Secret: secret},
		{URL: "https://example.com/hook", Secret: "short"},
		{URL: "https://example.com/hook", Secret: "webhook-secret-0123456789"}, // no whsec_
		{URL: "https://example.com/hook", Secret: "whsec_c2hvcnQ="},            // 5 bytes
	} {
		if _, err := notify.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
