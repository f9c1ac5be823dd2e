package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"time"

	"flashsale/internal/jsonscan"
)

// Headers of the canonical shape, base64url: golang-jwt's own and the
// shortest. A token is compared in its encoded form, so the fast path
// decodes no header at all.
var (
	headerJWT   = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	headerHS256 = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`))
)

// fastParse verifies a token of the shape this service's clients send
// without reflection: in a flash sale nearly every buyer's first request
// carries a token never seen before, and golang-jwt's generic parse costs
// 4 to 5 times as much (BenchmarkVerifyNewToken). The header must be one of
// the canonical two, the claims a flat object of sub, exp, nbf, iat and
// roles with plain strings and integers. It decides only what golang-jwt
// would decide the same way (FuzzFastParse checks it against the library):
// decided is false for any other token, which then goes through
// golang-jwt.
func (v *Verifier) fastParse(token string, now time.Time) (c Claims, exp time.Time, decided bool, err error) {
	header, rest, _ := strings.Cut(token, ".")
	payload, sig, found := strings.Cut(rest, ".")
	if !found || header != headerJWT && header != headerHS256 || strings.IndexByte(sig, '.') >= 0 {
		return c, exp, false, nil
	}
	var mac [sha256.Size + 3]byte // room for any 43- or 44-character signature
	if base64.RawURLEncoding.DecodedLen(len(sig)) > len(mac) {
		return c, exp, false, nil
	}
	n, err := base64.RawURLEncoding.Decode(mac[:], []byte(sig))
	if err != nil {
		return c, exp, false, nil
	}
	m := v.macs.Get().(*macState)
	defer v.macs.Put(m)
	if !m.valid(token[:len(header)+1+len(payload)], mac[:n]) {
		return c, exp, true, fmt.Errorf("%w: signature is invalid", ErrUnauthorized)
	}
	raw, err := m.decode(payload)
	if err != nil {
		return c, exp, false, nil
	}
	fc, ok := scanClaims(raw)
	if !ok || !fc.hasExp {
		return c, exp, false, nil
	}
	return fc.validate(now)
}

// macState is one pooled HMAC with the buffers a verification needs, so
// that a new token costs no allocation but its claims' strings.
type macState struct {
	h   hash.Hash
	buf []byte // the signed part, copied: hash.Hash.Write takes bytes
	raw []byte // the decoded claims; scanClaims copies what it keeps
	sum [sha256.Size]byte
}

func newMACState(secret []byte) *macState { return &macState{h: hmac.New(sha256.New, secret)} }

// valid says whether mac is the HMAC of signed, in constant time.
func (m *macState) valid(signed string, mac []byte) bool {
	m.buf = append(m.buf[:0], signed...)
	m.h.Reset()
	m.h.Write(m.buf)
	return hmac.Equal(m.h.Sum(m.sum[:0]), mac)
}

// decode decodes a base64url segment into m.raw, valid until m is reused.
func (m *macState) decode(seg string) ([]byte, error) {
	var err error
	m.raw, err = base64.RawURLEncoding.AppendDecode(m.raw[:0], []byte(seg))
	return m.raw, err
}

// fastClaims are the claims scanClaims read.
type fastClaims struct {
	sub                    string
	roles                  []string
	exp, nbf               int64
	hasExp, hasNbf, hasIat bool
	hasSub, hasRoles       bool
}

// validate applies golang-jwt's rules as NewVerifier configures them: exp
// required and not passed, nbf reached, both with the leeway; iat is not
// checked. Then this service's own: sub 1-64 characters.
func (fc fastClaims) validate(now time.Time) (Claims, time.Time, bool, error) {
	exp := time.Unix(fc.exp, 0)
	if !now.Before(exp.Add(leeway)) {
		return Claims{}, exp, true, fmt.Errorf("%w: token is expired", ErrUnauthorized)
	}
	if fc.hasNbf && now.Before(time.Unix(fc.nbf, 0).Add(-leeway)) {
		return Claims{}, exp, true, fmt.Errorf("%w: token is not valid yet", ErrUnauthorized)
	}
	if n := len(fc.sub); n < 1 || n > 64 {
		return Claims{}, exp, true, fmt.Errorf("%w: sub must be 1-64 characters", ErrUnauthorized)
	}
	admin := false
	for _, r := range fc.roles {
		admin = admin || r == RoleAdmin
	}
	return Claims{Subject: fc.sub, Admin: admin}, exp, true, nil
}

// scanClaims reads a JSON object whose keys are exactly sub, exp, nbf, iat
// or roles, each at most once, with whitespace as JSON allows it. sub and
// the roles are strings without escapes, the times integers of at most 15
// digits (exact in the float golang-jwt reads them into). Anything else,
// ok false.
func scanClaims(b []byte) (fc fastClaims, ok bool) {
	s := scanner{jsonscan.Scanner{B: b}}
	if !s.Byte('{') {
		return fc, false
	}
	if s.Byte('}') {
		return fc, s.End()
	}
	for {
		key, ok := s.Raw()
		if !ok || !s.Byte(':') || !fc.field(&s, key) {
			return fc, false
		}
		if s.Byte('}') {
			return fc, s.End()
		}
		if !s.Byte(',') {
			return fc, false
		}
	}
}

// field reads the value of key into fc, once per key.
func (fc *fastClaims) field(s *scanner, key []byte) bool {
	var ok bool
	switch k := string(key); { // compared, never kept: no allocation
	case k == "sub" && !fc.hasSub:
		fc.sub, ok = s.Str()
		fc.hasSub = true
	case k == "exp" && !fc.hasExp:
		fc.exp, ok = s.Int()
		fc.hasExp = true
	case k == "nbf" && !fc.hasNbf:
		fc.nbf, ok = s.Int()
		fc.hasNbf = true
	case k == "iat" && !fc.hasIat:
		_, ok = s.Int()
		fc.hasIat = true
	case k == "roles" && !fc.hasRoles:
		fc.roles, ok = s.strings()
		fc.hasRoles = true
	}
	return ok
}

type scanner struct{ jsonscan.Scanner }

// strings reads an array of strings as Str reads them.
func (s *scanner) strings() ([]string, bool) {
	if !s.Byte('[') {
		return nil, false
	}
	out := []string{}
	if s.Byte(']') {
		return out, true
	}
	for {
		v, ok := s.Str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.Byte(']') {
			return out, true
		}
		if !s.Byte(',') {
			return nil, false
		}
	}
}
