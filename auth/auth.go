// Package auth verifies and mints the HS256 JWTs buyers and admins present.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthorized is any token that does not prove who is asking.
var ErrUnauthorized = errors.New("auth: unauthorized")

// RoleAdmin is the role admin endpoints require.
const RoleAdmin = "admin"

// Claims are what a valid token says.
type Claims struct {
	Subject string
	Admin   bool
}

type jwtClaims struct {
	Roles []string `json:"roles,omitempty"`
	jwt.RegisteredClaims
}

// Verifier checks tokens against one secret, with the algorithm pinned to
// HS256 and an expiry required.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
	cache  cache
	macs   sync.Pool // of *macState keyed with secret: keying an HMAC costs two hash blocks
	now    func() time.Time
}

// leeway tolerates clock skew between the token's issuer and this instance.
const leeway = 5 * time.Second

// NewVerifier returns a verifier for secret.
func NewVerifier(secret string) *Verifier {
	v := &Verifier{secret: []byte(secret), now: time.Now}
	v.macs.New = func() any { return newMACState(v.secret) }
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v
}

// Verify returns the claims of a valid token. A buyer presses "buy" again
// and again with one token, and parsing it is half the cost of a sold-out
// answer, so verified tokens are remembered until they expire; a new one
// takes the reflection-free path when it has the canonical shape.
func (v *Verifier) Verify(token string) (Claims, error) {
	now, h := v.now(), v.cache.hash(token)
	if c, ok := v.cache.get(token, h, now); ok {
		return c, nil
	}
	c, exp, decided, err := v.fastParse(token, now)
	if !decided {
		c, exp, err = v.parse(token)
	}
	if err != nil {
		return Claims{}, err
	}
	v.cache.put(token, h, c, exp.Add(leeway))
	return c, nil
}

func (v *Verifier) parse(token string) (Claims, time.Time, error) {
	var c jwtClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return Claims{}, time.Time{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if n := len(c.Subject); n < 1 || n > 64 {
		return Claims{}, time.Time{}, fmt.Errorf("%w: sub must be 1-64 characters", ErrUnauthorized)
	}
	return Claims{Subject: c.Subject, Admin: slices.Contains(c.Roles, RoleAdmin)}, c.ExpiresAt.Time, nil
}

// Mint signs a token for sub that expires after ttl.
func Mint(secret, sub string, admin bool, ttl time.Duration, now time.Time) (string, error) {
	c := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
	if admin {
		c.Roles = []string{RoleAdmin}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
