package api

import (
	"flashsale/internal/jsonscan"
	"flashsale/inventory"
)

// fastPlaceBody parses the one body every buyer sends,
// {"sale_id":"<digits>","quantity":<digits>} (either order, JSON
// whitespace allowed), without reflection and without allocating: at
// flash-sale rates the strict decoder was a sixth of a sold-out answer's
// cost. It accepts only what strictPlaceBody accepts with the same
// meaning, and reports !ok for anything else (a zero or overlong sale id
// included), which then goes through strictPlaceBody, which also words
// the error.
func fastPlaceBody(b []byte) (sale inventory.SaleID, qty int64, ok bool) {
	p := parser{jsonscan.Scanner{B: b}}
	if !p.Byte('{') {
		return sale, 0, false
	}
	var haveSale, haveQty bool
	for i := 0; i < 2; i++ {
		if i == 1 && !p.Byte(',') {
			return sale, 0, false
		}
		key, ok := p.digitsOrKey(true)
		if !ok || !p.Byte(':') {
			return sale, 0, false
		}
		switch k := string(key); {
		case k == "sale_id" && !haveSale:
			v, ok := p.digitsOrKey(true)
			n, digits := parseDigits(v, 18)
			if !ok || !digits {
				return sale, 0, false
			}
			if sale, ok = saleID(n); !ok { // zero: the strict path words it
				return sale, 0, false
			}
			haveSale = true
		case k == "quantity" && !haveQty:
			v, ok := p.digitsOrKey(false)
			if !ok || len(v) > 1 && v[0] == '0' {
				return sale, 0, false
			}
			var digits bool
			if qty, digits = parseDigits(v, 9); !digits {
				return sale, 0, false
			}
			haveQty = true
		default:
			return sale, 0, false
		}
	}
	return sale, qty, p.Byte('}') && p.End()
}

// saleID is n as a SaleID, if it is one.
func saleID(n int64) (inventory.SaleID, bool) {
	s, err := inventory.NewSaleID(n)
	return s, err == nil
}

// parseDigits reads 1 to max decimal digits.
func parseDigits(v []byte, max int) (n int64, ok bool) {
	if len(v) == 0 || len(v) > max {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

type parser struct{ jsonscan.Scanner }

// digitsOrKey reads a quoted string of letters, digits and '_' (quoted),
// or a bare run of digits (!quoted).
func (p *parser) digitsOrKey(quoted bool) ([]byte, bool) {
	if quoted && !p.Byte('"') {
		return nil, false
	}
	if !quoted {
		p.Space()
	}
	start := p.I
	for p.I < len(p.B) {
		c := p.B[p.I]
		if c >= '0' && c <= '9' || quoted && (c >= 'a' && c <= 'z' || c == '_') {
			p.I++
			continue
		}
		break
	}
	v := p.B[start:p.I]
	if len(v) == 0 || quoted && (p.I >= len(p.B) || p.B[p.I] != '"') {
		return nil, false
	}
	if quoted {
		p.I++
	}
	return v, true
}
