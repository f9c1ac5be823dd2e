//go:build browser

package app_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestSalePageShowsASaleSellingOut drives the live sale page in a real
// headless Chromium: the page, open on a fresh sale, shows its 20 units;
// buyers then take them all through the API, and the page, fed by its
// Server-Sent Events only, shows 0 left and the sale sold out.
// UPDATE_SCREENSHOT=1 writes docs/dashboard.png from the final page.
// make browser runs it (scripts/browser.sh installs chromium first).
func TestSalePageShowsASaleSellingOut(t *testing.T) {
	chromium := chromiumPath(t)
	s := start(t, withEvents(t))
	const units = 20
	sale := s.createSale(units, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1100, 860))...)
	defer stopAlloc()
	bctx, stopBrowser := chromedp.NewContext(actx)
	defer stopBrowser()

	if _, err := chromedp.Run(bctx, chromedp.Navigate(s.base+"/dashboard?sale="+sale)); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	waitForPage(t, bctx, `document.getElementById("remaining").textContent === "20" && document.body.dataset.soldOut === "false"`,
		"the page shows the fresh sale's 20 units, not sold out")

	if sold := buyAll(s, sale); sold != units {
		t.Fatalf("buyers got %d units, want %d", sold, units)
	}
	waitForPage(t, bctx, `document.getElementById("remaining").textContent === "0" && document.body.dataset.soldOut === "true"`+
		` && document.getElementById("state").textContent === "Sold out"`,
		"the page shows 0 units left and the sale sold out")
	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		screenshot(t, bctx, s, sale)
	}
}

// chromiumPath is Chromium's path; without one the test fails in CI and
// is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: scripts/browser.sh (make browser) installs it")
	}
	t.Skip("chromium is not installed; make browser installs it with scripts/browser.sh")
	return ""
}

// waitForPage polls the page until the JavaScript expression holds.
func waitForPage(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second),
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("waiting until %s: %v; the page says:\n%s", what, err, text)
	}
}

// buyAll runs buyers of one unit each, a few at a time, until the API
// answers sold out; it returns the units sold.
func buyAll(s *stack, sale string) int {
	var sold, next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				n := strconv.FormatInt(next.Add(1), 10)
				r := s.order("buyer-"+n, "key-"+n, sale, 1)
				switch r.Status {
				case http.StatusCreated:
					sold.Add(1)
				case http.StatusConflict:
					return // sold out
				default:
					s.t.Errorf("order: %d %s", r.Status, r.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	return int(sold.Load())
}

// screenshot writes docs/dashboard.png once the figures have caught up,
// with late buyers still knocking so the sold-out answers show.
func screenshot(t *testing.T, ctx context.Context, s *stack, sale string) {
	for i := 0; i < 300; i++ {
		s.order("late-"+strconv.Itoa(i), "late-"+strconv.Itoa(i), sale, 1)
		time.Sleep(10 * time.Millisecond)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile("../docs/dashboard.png", png, 0o644); err != nil {
		t.Fatal(err)
	}
}
