package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"flashsale/internal/jsonscan"
)

// The relay writes an envelope per event and each consumer reads one per
// event: through encoding/json's reflection that was about a sixth of the
// relay's CPU and half of a consumer's. AppendJSON and Decode know this one
// shape; they give byte for byte and field for field what encoding/json
// gives, which the tests check, and Decode hands anything unusual
// (escapes, other keys, odd spacing inside data) to encoding/json.

// AppendJSON appends e as json.Marshal writes it: the fields in order,
// the empty optional ones left out, strings escaped the same way, and
// Data compacted.
func AppendJSON(dst []byte, e *Envelope) ([]byte, error) {
	dst = appendField(dst, `{"specversion":`, e.SpecVersion)
	dst = appendField(dst, `,"id":`, e.ID)
	dst = appendField(dst, `,"source":`, e.Source)
	dst = appendField(dst, `,"type":`, e.Type)
	if e.Subject != "" {
		dst = appendField(dst, `,"subject":`, e.Subject)
	}
	dst = appendField(dst, `,"time":`, e.Time)
	if e.DataContentType != "" {
		dst = appendField(dst, `,"datacontenttype":`, e.DataContentType)
	}
	if e.DataSchema != "" {
		dst = appendField(dst, `,"dataschema":`, e.DataSchema)
	}
	dst = append(dst, `,"data":`...)
	if e.Data == nil {
		return append(dst, "null}"...), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Data); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if bytes.ContainsAny(data, "<>&\u2028\u2029") {
		var esc bytes.Buffer // json.Marshal escapes HTML inside raw data too
		json.HTMLEscape(&esc, data)
		data = esc.Bytes()
	}
	return append(append(dst, data...), '}'), nil
}

func appendField(dst []byte, key, v string) []byte {
	return appendString(append(dst, key...), v)
}

const hex = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping on:
// control characters, <, > and & as \u00XX (\n, \r, \t, \b, \f short),
// U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				dst = append(dst, c)
			} else {
				dst = appendEscaped(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, `\u202`...)
			dst = append(dst, hex[r&0xF])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func appendEscaped(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
}

// errShape sends Decode to encoding/json.
var errShape = errors.New("cloudevent: not the common shape")

// Decode reads an envelope as json.Unmarshal into an Envelope does.
func Decode(b []byte) (Envelope, error) {
	if e, err := decodeFast(b); err == nil {
		return e, nil
	}
	var e Envelope
	err := json.Unmarshal(b, &e)
	return e, err
}

// decodeFast reads an object of plain strings (no escapes) under the
// envelope's exact keys and a data value, each key at most once.
func decodeFast(b []byte) (Envelope, error) {
	var e Envelope
	s := jsonscan.Scanner{B: b}
	if !s.Byte('{') {
		return e, errShape
	}
	seen := 0
	for first := true; !s.Byte('}'); first = false {
		if !first && !s.Byte(',') {
			return e, errShape
		}
		key, ok := plainString(&s)
		if !ok || !s.Byte(':') {
			return e, errShape
		}
		bit, err := e.set(&s, key)
		if err != nil || seen&bit != 0 {
			return e, errShape
		}
		seen |= bit
	}
	if !s.End() {
		return e, errShape
	}
	return e, nil
}

// set reads the value of key into e, and names the key by a bit.
func (e *Envelope) set(s *jsonscan.Scanner, key string) (int, error) {
	if key == "data" {
		raw, ok := rawValue(s)
		if !ok {
			return 0, errShape
		}
		e.Data = raw
		return 1, nil
	}
	var dst *string
	var bit int
	switch key {
	case "specversion":
		dst, bit = &e.SpecVersion, 2
	case "id":
		dst, bit = &e.ID, 4
	case "source":
		dst, bit = &e.Source, 8
	case "type":
		dst, bit = &e.Type, 16
	case "subject":
		dst, bit = &e.Subject, 32
	case "time":
		dst, bit = &e.Time, 64
	case "datacontenttype":
		dst, bit = &e.DataContentType, 128
	case "dataschema":
		dst, bit = &e.DataSchema, 256
	default:
		return 0, errShape
	}
	v, ok := plainString(s)
	if !ok {
		return 0, errShape
	}
	*dst = v
	return bit, nil
}

// plainString reads a string without escapes, of valid UTF-8 and no
// control characters: anything else is left to encoding/json.
func plainString(s *jsonscan.Scanner) (string, bool) {
	if !s.Byte('"') {
		return "", false
	}
	start := s.I
	for ; s.I < len(s.B); s.I++ {
		switch c := s.B[s.I]; {
		case c == '"':
			v := s.B[start:s.I]
			s.I++
			return string(v), utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// rawValue reads data's value: an object whose text encoding/json would
// keep as it is (compact, no escapes, valid UTF-8). Anything else, null
// included, is left to encoding/json.
func rawValue(s *jsonscan.Scanner) (json.RawMessage, bool) {
	s.Space()
	start, depth := s.I, 0
	for ; s.I < len(s.B); s.I++ {
		switch c := s.B[s.I]; c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.I++
				v := s.B[start:s.I]
				if v[0] != '{' || !json.Valid(v) {
					return nil, false
				}
				return json.RawMessage(bytes.Clone(v)), true
			}
		case '"':
			if !skipString(s) {
				return nil, false
			}
		case ' ', '\t', '\n', '\r', '\\':
			return nil, false
		default:
			if depth == 0 {
				return nil, false
			}
		}
	}
	return nil, false
}

// skipString moves past a string that opens at s.I, unless it holds an
// escape or invalid UTF-8.
func skipString(s *jsonscan.Scanner) bool {
	start := s.I + 1
	for s.I++; s.I < len(s.B); s.I++ {
		switch c := s.B[s.I]; {
		case c == '"':
			return utf8.Valid(s.B[start:s.I])
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
}
