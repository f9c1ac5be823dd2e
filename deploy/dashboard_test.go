package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"flashsale/app"
	"flashsale/auth"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		Title   string
		Targets []struct{ Expr string }
	}
}

// TestDashboardQueriesNameExportedMetrics parses every PromQL query of
// deploy/grafana/flashsale.json and checks that each metric it selects is
// in a scrape of the real service (relay and consumers running, after a
// sale sold out), with every label the query matches on besides job and
// instance, which Prometheus adds.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	exprs := dashboardExprs(t)
	exported := scrapeAfterASale(t)
	p := parser.NewParser(parser.Options{})
	for panel, list := range exprs {
		for _, e := range list {
			// Grafana's variables, as Grafana would expand them.
			q := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*").Replace(e)
			ast, err := p.ParseExpr(q)
			if err != nil {
				t.Errorf("panel %q: %q: %v", panel, e, err)
				continue
			}
			parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					checkSelector(t, panel, vs, exported)
				}
				return nil
			})
		}
	}
}

func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "flashsale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%d panels with queries, want the dozen of the dashboard", len(out))
	}
	return out
}

var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

// checkSelector fails the test unless a series of vs's metric was scraped
// carrying every label vs matches on.
func checkSelector(t *testing.T, panel string, vs *parser.VectorSelector, exported map[string]float64) {
	t.Helper()
	found := false
	labels := map[string]bool{}
	for series := range exported {
		name, rest, _ := strings.Cut(series, "{")
		if name != vs.Name {
			continue
		}
		found = true
		for _, m := range labelName.FindAllStringSubmatch(rest, -1) {
			labels[m[1]] = true
		}
	}
	if !found {
		t.Errorf("panel %q selects %s, which the service does not export", panel, vs.Name)
		return
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != "__name__" && m.Name != "job" && m.Name != "instance" && !labels[m.Name] {
			t.Errorf("panel %q matches %s on label %q, which it does not carry", panel, vs.Name, m.Name)
		}
	}
}

// scrapeAfterASale runs the service with its relay and consumers, sells
// the one unit of a sale, is refused once from Redis and once from memory,
// waits for the event to be relayed and applied, and scrapes /metrics.
func scrapeAfterASale(t *testing.T) map[string]float64 {
	t.Helper()
	cfg := testenv.Config(t, 4)
	cfg.RelayEnabled, cfg.ConsumersEnabled = true, true
	testenv.Topic(t, cfg)
	cfg.DeadLetterTopic = cfg.KafkaTopic + ".dlq"
	inst := apptest.Start(t, cfg, apptest.Options{})
	a := inst.App
	debug := httptest.NewServer(app.DebugHandler(a.Metrics()))
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		debug.Close()
		client.CloseIdleConnections()
	})
	base := inst.Base
	post := func(path, sub string, admin bool, body string, want int) []byte {
		tok, _ := auth.Mint(cfg.JWTSecret, sub, admin, time.Hour, time.Now())
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-"+sub)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d %s, want %d", path, resp.StatusCode, b, want)
		}
		return b
	}
	now := time.Now().UTC()
	var sale struct{ ID string }
	_ = json.Unmarshal(post("/v1/admin/sales", "admin", true, fmt.Sprintf(`{"sku":"DASH","title":"dashboard","price_cents":100,"currency":"EUR",`+
		`"stock":1,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)),
		http.StatusCreated), &sale)
	for i, want := range []int{http.StatusCreated, http.StatusConflict, http.StatusConflict} {
		post("/v1/orders", fmt.Sprintf("dash-buyer-%d", i), false, `{"sale_id":"`+sale.ID+`","quantity":1}`, want)
	}
	var got map[string]float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = testenv.Scrape(t, debug.URL+"/metrics")
		if got[`flashsale_consumer_applied_total{consumer="inventory"}`] >= 1 && got["flashsale_outbox_published_total"] >= 1 {
			break
		}
	}
	return got
}
