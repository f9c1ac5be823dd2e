// Package jsonscan is the cursor the hot path's reflection-free JSON
// readers share (the order body in api, the token claims in auth, the
// event envelope in internal/cloudevent, the order events' data in
// ledger): each reads only the one shape it knows and leaves anything else
// to encoding/json, so what they share is whitespace and punctuation, and
// for auth and the ledger plain ASCII strings and small integers
// (internal/cloudevent reads its own strings, which may hold UTF-8).
package jsonscan

// Scanner is a position in a JSON text.
type Scanner struct {
	B []byte // the text
	I int    // the next byte to read
}

// Space skips JSON whitespace.
func (s *Scanner) Space() {
	for s.I < len(s.B) && (s.B[s.I] == ' ' || s.B[s.I] == '\t' || s.B[s.I] == '\n' || s.B[s.I] == '\r') {
		s.I++
	}
}

// Byte consumes c after optional whitespace, and says whether it was there.
func (s *Scanner) Byte(c byte) bool {
	s.Space()
	if s.I < len(s.B) && s.B[s.I] == c {
		s.I++
		return true
	}
	return false
}

// End says whether only whitespace is left.
func (s *Scanner) End() bool {
	s.Space()
	return s.I == len(s.B)
}

// Str reads a string of printable ASCII without escapes: anything else
// (an escape, a control character, UTF-8 that encoding/json would have to
// check or replace) is left to the library.
func (s *Scanner) Str() (string, bool) {
	b, ok := s.Raw()
	return string(b), ok
}

// Raw is Str without the copy: the bytes between the quotes, in s.B.
func (s *Scanner) Raw() ([]byte, bool) {
	if !s.Byte('"') {
		return nil, false
	}
	start := s.I
	for s.I < len(s.B) {
		c := s.B[s.I]
		if c == '"' {
			s.I++
			return s.B[start : s.I-1], true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
		s.I++
	}
	return nil, false
}

// Int reads a non-negative JSON integer of at most 15 digits.
func (s *Scanner) Int() (int64, bool) {
	s.Space()
	start, n := s.I, int64(0)
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		n = n*10 + int64(s.B[s.I]-'0')
		s.I++
	}
	digits := s.I - start
	if digits == 0 || digits > 15 || digits > 1 && s.B[start] == '0' {
		return 0, false
	}
	if s.I < len(s.B) && (s.B[s.I] == '.' || s.B[s.I] == 'e' || s.B[s.I] == 'E') {
		return 0, false
	}
	return n, true
}

// Skip moves past one value of a text known to be valid JSON (checked
// before, as inbox.Parse checks an event's data), whatever it holds: its
// end is the first ',', '}' or ']' outside a string at its own depth.
func (s *Scanner) Skip() bool {
	s.Space()
	start, depth := s.I, 0
	for ; s.I < len(s.B); s.I++ {
		switch s.B[s.I] {
		case '"':
			for s.I++; s.I < len(s.B) && s.B[s.I] != '"'; s.I++ {
				if s.B[s.I] == '\\' {
					s.I++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return s.I > start
			}
			depth--
		case ',':
			if depth == 0 {
				return s.I > start
			}
		}
	}
	return depth == 0 && s.I > start
}
