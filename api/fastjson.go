package api

import "flashsale/internal/jsonscan"

// fastPlaceBody parses the one body every buyer sends,
// {"sale_id":"<digits>","quantity":<digits>} (either order, JSON
// whitespace allowed), without reflection: at flash-sale rates the strict
// decoder was a sixth of a sold-out answer's cost. It accepts only what the
// strict decoder accepts with the same meaning, and reports !ok for
// anything else, which then goes through the strict decoder.
func fastPlaceBody(b []byte) (placeOrderBody, bool) {
	var out placeOrderBody
	p := parser{jsonscan.Scanner{B: b}}
	if !p.Byte('{') {
		return out, false
	}
	for i := 0; i < 2; i++ {
		if i == 1 && !p.Byte(',') {
			return out, false
		}
		key, ok := p.digitsOrKey(true)
		if !ok || !p.Byte(':') {
			return out, false
		}
		switch {
		case key == "sale_id" && out.SaleID == nil:
			v, ok := p.digitsOrKey(true)
			if !ok || !isDigits(v) {
				return out, false
			}
			out.SaleID = &v
		case key == "quantity" && out.Quantity == nil:
			v, ok := p.digitsOrKey(false)
			if !ok || len(v) > 9 || (len(v) > 1 && v[0] == '0') {
				return out, false
			}
			n := int64(0)
			for _, c := range []byte(v) {
				n = n*10 + int64(c-'0')
			}
			out.Quantity = &n
		default:
			return out, false
		}
	}
	return out, p.Byte('}') && p.End()
}

type parser struct{ jsonscan.Scanner }

// digitsOrKey reads a quoted string of letters, digits and '_' (quoted),
// or a bare run of digits (!quoted).
func (p *parser) digitsOrKey(quoted bool) (string, bool) {
	if quoted && !p.Byte('"') {
		return "", false
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
	v := string(p.B[start:p.I])
	if v == "" || quoted && (p.I >= len(p.B) || p.B[p.I] != '"') {
		return "", false
	}
	if quoted {
		p.I++
	}
	return v, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
