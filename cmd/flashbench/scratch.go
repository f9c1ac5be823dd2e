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
	drop := func() {
		for i, name := range made {
			_ = adminExec(context.WithoutCancel(ctx), urls[i], "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	}
	out := make([]string, len(urls))
	run := randHex(3)
	for i, u := range urls {
		name := fmt.Sprintf("flashbench_scratch_%s_%d", run, i)
		if err := adminExec(ctx, u, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", "CREATE DATABASE "+name); err != nil {
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

// adminExec runs the statements in order on the server of u, connected to
// its postgres database, stopping at the first that fails.
func adminExec(ctx context.Context, u string, stmts ...string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	p.Path = "/postgres"
	c, err := pgx.Connect(ctx, p.String())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// randHex is n random bytes in hex: names private to one run.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
