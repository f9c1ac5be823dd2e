package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// waitReady polls /readyz for up to a minute.
func (b *bench) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.opts.URL+"/readyz", nil)
		resp, err := b.api.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/readyz never answered 200: %s", b.opts.URL, last)
}

// createSale creates an active sale through the admin API.
func (b *bench) createSale(ctx context.Context, sku string, stock, limit int) (string, error) {
	return b.createSaleAt(ctx, b.opts.URL, sku, stock, limit)
}

// createSaleAt creates an active sale through the admin API of the service
// at base.
func (b *bench) createSaleAt(ctx context.Context, base, sku string, stock, limit int) (string, error) {
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{"sku": sku, "title": "flashbench " + sku, "price_cents": 19900,
		"currency": "EUR", "stock": stock, "per_user_limit": limit,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339Nano)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/admin/sales", bytes.NewReader(body))
	req.Header.Set("Authorization", b.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.api.Do(req)
	if err != nil {
		return "", fmt.Errorf("create sale: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create sale: %d %s", resp.StatusCode, bytes.TrimSpace(rb))
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &v); err != nil || v.ID == "" {
		return "", fmt.Errorf("create sale: no id in %s", rb)
	}
	return v.ID, nil
}

// remaining reads the sale's remaining stock through the API.
func (b *bench) remaining(ctx context.Context, id string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.opts.URL+"/v1/sales/"+id, nil)
	resp, err := b.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Remaining int `json:"remaining"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/sales/%s: %d", id, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.Remaining, err
}

// buyClient is the generator's client for the buy endpoint of base.
func (b *bench) buyClient(base, saleID string) *Client {
	body := fmt.Sprintf(`{"sale_id":%q,"quantity":%d}`, saleID, b.opts.Quantity)
	return NewClient(ClientOptions{URL: base + "/v1/orders", Body: []byte(body), Conns: b.opts.Conns,
		Timeout: b.opts.Timeout, Retries: b.opts.Retries, Backoff: b.opts.Backoff, RetryCap: b.opts.RetryCap,
		Std: b.opts.ClientKind == "std"})
}

// watched lists the processes to report, this one first.
func (b *bench) watched(extra ...Watched) []Watched {
	return b.watchedService(b.opts.ServicePID, extra...)
}

// watchedService is watched with the service of pid as flashsale serve.
func (b *bench) watchedService(pid int, extra ...Watched) []Watched {
	w := []Watched{{Name: "flashbench (generator)"}}
	if pid > 0 {
		w = append(w, Watched{Name: "flashsale serve", PID: pid})
	}
	for _, p := range b.opts.Procs {
		pw, _ := parseProc(p)
		w = append(w, pw)
	}
	return append(w, extra...)
}
