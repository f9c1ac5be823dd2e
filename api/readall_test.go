package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadAllReadsWhatTheBodyHas: the announced length only sizes the
// first buffer; short, long, unknown and one-byte-at-a-time bodies all
// come back whole, and a read error is returned.
func TestReadAllReadsWhatTheBodyHas(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	for _, c := range []struct {
		name      string
		body      io.Reader
		announced int64
		want      string
	}{
		{"exact", strings.NewReader(`{"a":1}`), 7, `{"a":1}`},
		{"unknown length", strings.NewReader(`{"a":1}`), -1, `{"a":1}`},
		{"announced too short", strings.NewReader(`{"a":1}`), 2, `{"a":1}`},
		{"announced too long", strings.NewReader(`{}`), 100, `{}`},
		{"empty", strings.NewReader(""), 0, ""},
		{"beyond the first buffer", strings.NewReader(long), int64(len(long)), long},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(long)), 3, long},
		{"data with EOF", iotest.DataErrReader(strings.NewReader(`{"a":1}`)), 7, `{"a":1}`},
	} {
		got, err := readAll(c.body, c.announced)
		if err != nil || !bytes.Equal(got, []byte(c.want)) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", c.name, len(got), err, len(c.want))
		}
	}
	boom := errors.New("boom")
	if _, err := readAll(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), 2); !errors.Is(err, boom) {
		t.Errorf("read error: %v, want boom", err)
	}
}
