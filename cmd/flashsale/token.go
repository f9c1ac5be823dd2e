package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"flashsale/auth"
)

func tokenCmd(args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flashsale token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "buyer id, the token's subject (required, 1-64 characters)")
	admin := fs.Bool("admin", false, "grant the admin role")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	secret := fs.String("jwt-secret", getenv("FLASHSALE_JWT_SECRET"), "signing secret (env FLASHSALE_JWT_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if n := len(*sub); n < 1 || n > 64 {
		return fmt.Errorf("token: --sub must be 1-64 characters")
	}
	if len(*secret) < 16 {
		return fmt.Errorf("token: FLASHSALE_JWT_SECRET must be set and at least 16 bytes")
	}
	if *ttl <= 0 {
		return fmt.Errorf("token: --ttl must be positive")
	}
	tok, err := auth.Mint(*secret, *sub, *admin, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
