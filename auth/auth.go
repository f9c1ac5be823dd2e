// Package auth verifies and mints the HS256 JWTs buyers and admins present.
package auth

import (
	"errors"
	"fmt"
	"slices"
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
}

// NewVerifier returns a verifier for secret.
func NewVerifier(secret string) *Verifier {
	return &Verifier{secret: []byte(secret), parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second),
	)}
}

// Verify returns the claims of a valid token.
func (v *Verifier) Verify(token string) (Claims, error) {
	var c jwtClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if n := len(c.Subject); n < 1 || n > 64 {
		return Claims{}, fmt.Errorf("%w: sub must be 1-64 characters", ErrUnauthorized)
	}
	return Claims{Subject: c.Subject, Admin: slices.Contains(c.Roles, RoleAdmin)}, nil
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
