package api

// fastPlaceBody parses the one body every buyer sends,
// {"sale_id":"<digits>","quantity":<digits>} (either order, JSON
// whitespace allowed), without reflection: at flash-sale rates the strict
// decoder was a sixth of a sold-out answer's cost. It accepts only what the
// strict decoder accepts with the same meaning, and reports !ok for
// anything else, which then goes through the strict decoder.
func fastPlaceBody(b []byte) (placeOrderBody, bool) {
	var out placeOrderBody
	p := parser{b: b}
	if !p.byte('{') {
		return out, false
	}
	for i := 0; i < 2; i++ {
		if i == 1 && !p.byte(',') {
			return out, false
		}
		key, ok := p.digitsOrKey(true)
		if !ok || !p.byte(':') {
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
	return out, p.byte('}') && p.end()
}

type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// byte consumes c after optional whitespace.
func (p *parser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// digitsOrKey reads a quoted string of letters, digits and '_' (quoted),
// or a bare run of digits (!quoted).
func (p *parser) digitsOrKey(quoted bool) (string, bool) {
	if quoted && !p.byte('"') {
		return "", false
	}
	if !quoted {
		p.space()
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || quoted && (c >= 'a' && c <= 'z' || c == '_') {
			p.i++
			continue
		}
		break
	}
	v := string(p.b[start:p.i])
	if v == "" || quoted && (p.i >= len(p.b) || p.b[p.i] != '"') {
		return "", false
	}
	if quoted {
		p.i++
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
