package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// scratchDatabases creates flashbench_scratch_<random>_<i> beside each
// database of urls and returns their URLs and a function that drops them.
func scratchDatabases(ctx context.Context, urls []string) ([]string, func(), error) {
	var made []string
	admin := func(u string) (*pgx.Conn, error) {
		p, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		p.Path = "/postgres"
		return pgx.Connect(ctx, p.String())
	}
	drop := func() {
		for i, name := range made {
			if c, err := admin(urls[i]); err == nil {
				_, _ = c.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
				_ = c.Close(context.WithoutCancel(ctx))
			}
		}
	}
	out := make([]string, len(urls))
	run := randHex(3)
	for i, u := range urls {
		name := fmt.Sprintf("flashbench_scratch_%s_%d", run, i)
		c, err := admin(u)
		if err != nil {
			drop()
			return nil, nil, err
		}
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		if err == nil {
			_, err = c.Exec(ctx, "CREATE DATABASE "+name)
		}
		_ = c.Close(ctx)
		if err != nil {
			drop()
			return nil, nil, fmt.Errorf("scratch database %s: %w", name, err)
		}
		made = append(made, name)
		p, _ := url.Parse(u)
		p.Path = "/" + name
		out[i] = p.String()
	}
	return out, drop, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
