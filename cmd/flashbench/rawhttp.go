package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawTransport is a lean HTTP/1.1 keep-alive client for the one request
// the generator sends: the request is written from a prebuilt head into a
// reused buffer, the response read with a bufio.Reader and only the status,
// the headers the client needs and the body are kept. net/http's client
// spends about four times its CPU per request, which on two shared cores
// would make the generator the bottleneck it must not be.
type rawTransport struct {
	addr    string
	timeout time.Duration
	head    []byte // request line and fixed headers, up to "Authorization: "
	body    []byte
	idle    chan *rawConn
	slots   chan struct{} // one per open connection
}

type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	out []byte
}

func newRawTransport(o ClientOptions) *rawTransport {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		u = &url.URL{Host: "invalid:0", Path: "/"}
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nAuthorization: ",
		u.RequestURI(), u.Host, len(o.Body))
	conns := max(1, o.Conns)
	return &rawTransport{addr: addr, timeout: o.Timeout, head: []byte(head), body: o.Body,
		idle: make(chan *rawConn, conns), slots: make(chan struct{}, conns)}
}

var errNoConn = errors.New("no connection free within the timeout")

func (t *rawTransport) get(deadline time.Time) (*rawConn, error) {
	select {
	case c := <-t.idle:
		return c, nil
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case c := <-t.idle:
		return c, nil
	case t.slots <- struct{}{}:
		c, err := net.DialTimeout("tcp", t.addr, time.Until(deadline))
		if err != nil {
			<-t.slots
			return nil, err
		}
		return &rawConn{c: c, r: bufio.NewReaderSize(c, 8<<10), out: make([]byte, 0, 1<<10)}, nil
	case <-timer.C:
		return nil, timeoutError{errNoConn}
	}
}

func (t *rawTransport) discard(c *rawConn) {
	_ = c.c.Close()
	<-t.slots
}

func (t *rawTransport) close() {
	for {
		select {
		case c := <-t.idle:
			t.discard(c)
		default:
			return
		}
	}
}

type timeoutError struct{ error }

func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (t *rawTransport) do(auth, key string, buf []byte) (answer, error) {
	deadline := time.Now().Add(t.timeout)
	c, err := t.get(deadline)
	if err != nil {
		return answer{}, err
	}
	if err := c.c.SetDeadline(deadline); err != nil {
		t.discard(c)
		return answer{}, err
	}
	w := append(c.out[:0], t.head...)
	w = append(w, auth...)
	w = append(w, "\r\nIdempotency-Key: "...)
	w = append(w, key...)
	w = append(w, "\r\n\r\n"...)
	w = append(w, t.body...)
	c.out = w
	if _, err := c.c.Write(w); err != nil {
		t.discard(c)
		return answer{}, err
	}
	a, keep, err := readResponse(c.r, buf)
	if err != nil {
		t.discard(c)
		return answer{}, err
	}
	if keep {
		t.idle <- c
	} else {
		t.discard(c)
	}
	return a, nil
}

// readResponse reads one HTTP/1.1 response: the status, Content-Length or
// chunked body (into buf, the rest discarded), Connection, Retry-After and
// Idempotent-Replayed.
func readResponse(r *bufio.Reader, buf []byte) (a answer, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return a, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return a, false, fmt.Errorf("malformed status line %q", line)
	}
	if a.code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return a, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return a, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return a, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		case bytes.EqualFold(name, []byte("Retry-After")):
			a.retryAfter = retryAfter(string(value))
		case bytes.EqualFold(name, []byte("Idempotent-Replayed")):
			a.replayed = bytes.EqualFold(value, []byte("true"))
		}
	}
	n := 0
	switch {
	case chunked:
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return a, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
			if err != nil || size < 0 {
				return a, false, fmt.Errorf("malformed chunk size %q", line)
			}
			if size == 0 {
				for { // trailers, then the blank line
					line, err := r.ReadSlice('\n')
					if err != nil {
						return a, false, err
					}
					if len(bytes.TrimRight(line, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			if n, err = readInto(r, buf, n, int(size)); err != nil {
				return a, false, err
			}
			if _, err := r.Discard(2); err != nil { // CRLF after the chunk
				return a, false, err
			}
		}
	case length >= 0:
		if n, err = readInto(r, buf, 0, length); err != nil {
			return a, false, err
		}
	default:
		// No length: the body runs to the end of the connection.
		m, _ := io.ReadFull(r, buf)
		n = m
		_, _ = io.Copy(io.Discard, r)
		keep = false
	}
	a.body = buf[:n]
	return a, keep, nil
}

// readInto reads size bytes, keeping what fits in buf after n.
func readInto(r *bufio.Reader, buf []byte, n, size int) (int, error) {
	keep := min(size, len(buf)-n)
	if _, err := io.ReadFull(r, buf[n:n+keep]); err != nil {
		return n, err
	}
	if _, err := r.Discard(size - keep); err != nil {
		return n, err
	}
	return n + keep, nil
}
