package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef0123"

var b64 = base64.RawURLEncoding

// sign makes a token of any header and payload, signed with secret.
func sign(secret, header, payload string) string {
	unsigned := header + "." + b64.EncodeToString([]byte(payload))
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(unsigned))
	return unsigned + "." + b64.EncodeToString(h.Sum(nil))
}

func fixedVerifier(now time.Time) *Verifier {
	v := NewVerifier(testSecret)
	v.now = func() time.Time { return now }
	return v
}

// agrees checks that when the fast path decides a token, golang-jwt
// decides it the same way, with the same claims and expiry. It reports
// whether the fast path decided.
func agrees(t testing.TB, v *Verifier, token string) bool {
	t.Helper()
	c, exp, decided, err := v.fastParse(token, v.now())
	if !decided {
		return false
	}
	rc, rexp, rerr := v.parse(token)
	if (err == nil) != (rerr == nil) {
		t.Fatalf("token %s: fast path says %v, golang-jwt %v", token, err, rerr)
	}
	if err == nil && (c != rc || !exp.Equal(rexp)) {
		t.Fatalf("token %s: fast path %+v %v, golang-jwt %+v %v", token, c, exp, rc, rexp)
	}
	return true
}

// TestFastParseAgreesWithLibrary runs tokens of every shape through both
// paths: the canonical ones must take the fast path, valid or not, and
// agree with golang-jwt; the others must be left to it.
func TestFastParseAgreesWithLibrary(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := fixedVerifier(now)
	exp, iat := now.Add(time.Hour).Unix(), now.Unix()
	hs512 := b64.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT"}`))
	none := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	cases := []struct {
		name, secret, header, payload string
		fast, valid                   bool
	}{
		{"minted by Mint", testSecret, headerJWT, fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":%d}`, exp, iat), true, true},
		{"admin", testSecret, headerJWT, fmt.Sprintf(`{"roles":["admin"],"sub":"root","exp":%d,"iat":%d}`, exp, iat), true, true},
		{"map claims order", testSecret, headerJWT, fmt.Sprintf(`{"exp":%d,"sub":"x"}`, exp), true, true},
		{"alg-only header", testSecret, headerHS256, fmt.Sprintf(`{"exp":%d,"sub":"x"}`, exp), true, true},
		{"whitespace", testSecret, headerJWT, fmt.Sprintf(" {\n\t\"sub\" : \"x\" ,\r\"exp\": %d ,\"roles\":[ \"a\" , \"admin\" ] } ", exp), true, true},
		{"other roles", testSecret, headerJWT, fmt.Sprintf(`{"roles":["buyer"],"sub":"x","exp":%d}`, exp), true, true},
		{"no roles", testSecret, headerJWT, fmt.Sprintf(`{"roles":[],"sub":"x","exp":%d}`, exp), true, true},
		{"expired", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d}`, now.Add(-time.Hour).Unix()), true, false},
		{"expired within leeway", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d}`, now.Add(-3*time.Second).Unix()), true, true},
		{"expired at the leeway", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d}`, now.Add(-leeway).Unix()), true, false},
		{"not valid yet", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d,"nbf":%d}`, exp, now.Add(time.Minute).Unix()), true, false},
		{"nbf within leeway", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d,"nbf":%d}`, exp, now.Add(3*time.Second).Unix()), true, true},
		{"iat in the future (not checked)", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d,"iat":%d}`, exp, now.Add(time.Hour).Unix()), true, true},
		{"sub too long", testSecret, headerJWT, fmt.Sprintf(`{"sub":"%s","exp":%d}`, strings.Repeat("s", 65), exp), true, false},
		{"sub empty", testSecret, headerJWT, fmt.Sprintf(`{"sub":"","exp":%d}`, exp), true, false},
		{"no sub", testSecret, headerJWT, fmt.Sprintf(`{"exp":%d}`, exp), true, false},
		{"wrong secret", "another-secret-0123456789", headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d}`, exp), true, false},
		{"no exp", testSecret, headerJWT, `{"sub":"x"}`, false, false},
		{"HS512", testSecret, hs512, fmt.Sprintf(`{"sub":"x","exp":%d}`, exp), false, false},
		{"alg none", testSecret, none, fmt.Sprintf(`{"sub":"x","exp":%d}`, exp), false, false},
		{"duplicate sub", testSecret, headerJWT, fmt.Sprintf(`{"sub":"a","sub":"b","exp":%d}`, exp), false, true},
		{"upper-case key", testSecret, headerJWT, fmt.Sprintf(`{"SUB":"a","exp":%d}`, exp), false, true},
		{"escaped sub", testSecret, headerJWT, fmt.Sprintf(`{"sub":"\u0061","exp":%d}`, exp), false, true},
		{"non-ASCII sub", testSecret, headerJWT, fmt.Sprintf(`{"sub":"zoë","exp":%d}`, exp), false, true},
		{"float exp", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d.5}`, exp), false, true},
		{"exponent exp", testSecret, headerJWT, `{"sub":"x","exp":1.9e9}`, false, true},
		{"other claim", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d,"jti":"1"}`, exp), false, true},
		{"trailing data", testSecret, headerJWT, fmt.Sprintf(`{"sub":"x","exp":%d} x`, exp), false, false},
		{"not an object", testSecret, headerJWT, `["sub"]`, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := sign(c.secret, c.header, c.payload)
			if fast := agrees(t, v, token); fast != c.fast {
				t.Errorf("fast path taken: %v, want %v", fast, c.fast)
			}
			if _, err := v.Verify(token); (err == nil) != c.valid {
				t.Errorf("Verify: %v, want valid %v", err, c.valid)
			}
		})
	}
}

// TestFastParseRefusesTamperedTokens flips each character of a valid token
// in turn: no change may pass where golang-jwt refuses.
func TestFastParseRefusesTamperedTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := fixedVerifier(now)
	token, err := Mint(testSecret, "alice", true, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(token) {
		for _, r := range []byte{'A', '_', '.', '='} {
			b := []byte(token)
			if b[i] == r {
				continue
			}
			b[i] = r
			agrees(t, v, string(b))
		}
	}
}

// FuzzFastParse signs arbitrary claims (and sometimes breaks the
// signature): whenever the fast path decides, golang-jwt must agree.
//
//	go test -run '^$' -fuzz FuzzFastParse -fuzztime 60s ./auth/
func FuzzFastParse(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	for _, p := range []string{
		fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":1}`, exp),
		fmt.Sprintf(`{"roles":["admin"],"sub":"r","exp":%d,"nbf":%d}`, exp, now.Unix()),
		fmt.Sprintf(` { "exp" : %d , "sub" : "x" } `, now.Unix()),
		`{"sub":"x","exp":012}`,
		`{}`,
	} {
		f.Add(p, uint8(0))
		f.Add(p, uint8(1))
		f.Add(p, uint8(2))
	}
	v := fixedVerifier(now)
	f.Fuzz(func(t *testing.T, payload string, variant uint8) {
		header := headerJWT
		if variant%2 == 1 {
			header = headerHS256
		}
		token := sign(testSecret, header, payload)
		if variant%3 == 2 {
			token = token[:len(token)-2] + "AA"
		}
		agrees(t, v, token)
	})
}

// BenchmarkVerifyNewToken is the verification of a token never seen
// before (a flash sale's buyer's first click): golang-jwt alone against
// the fast path, with the cache out of the way.
func BenchmarkVerifyNewToken(b *testing.B) {
	now := time.Now()
	tokens := make([]string, 4096)
	for i := range tokens {
		tokens[i], _ = Mint(testSecret, fmt.Sprintf("buyer-%d", i), false, time.Hour, now)
	}
	v := NewVerifier(testSecret)
	b.Run("golang-jwt", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, _, err := v.parse(tokens[i%len(tokens)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, _, decided, err := v.fastParse(tokens[i%len(tokens)], now); !decided || err != nil {
				b.Fatal(decided, err)
			}
		}
	})
}
