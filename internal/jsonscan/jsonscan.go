// Package jsonscan is the cursor the hot path's reflection-free JSON
// readers share (the order body in api, the token claims in auth): each
// reads only the one shape it knows and leaves anything else to
// encoding/json, so all they need in common is whitespace and punctuation.
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
