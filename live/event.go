// Package live pushes order transitions and sale changes to subscribers
// held open by this instance (the API's server-sent event streams).
//
// Every instance can serve every subscriber: order transitions, made on
// whichever instance, are PUBLISHed to one Redis channel under the
// deployment's prefix (Publisher), and each instance's Hub holds one
// subscription to it and fans each message out in memory to its local
// subscribers of that topic. Sales need no messages: a Hub polls the view
// of each sale that has local subscribers and pushes it when it changed.
//
// The streams are a convenience, not the truth: a message is fire and
// forget (lost while Redis or the hub's connection is away), and a
// subscriber too slow to keep up is dropped. Clients resynchronise by
// reconnecting, which sends the current state first; GET /v1/orders/{id}
// and GET /v1/sales/{id} stay the reference.
package live

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
)

// Event is one message to the subscribers of a topic. It is immutable once
// made: every subscriber of the topic shares it.
type Event struct {
	Topic string // "order:<id>" or "sale:<id>"
	Name  string // the SSE event type
	ID    string // the SSE event id; a client's Last-Event-ID
	Data  []byte // one line of JSON
	frame []byte // the event as an SSE frame, rendered once
}

// NewEvent makes an event; data must not contain a newline.
func NewEvent(topic, name, id string, data []byte) *Event {
	e := &Event{Topic: topic, Name: name, ID: id, Data: data}
	e.frame = fmt.Appendf(nil, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data)
	return e
}

// ContentID is an event id that depends only on data, so that every
// instance names the same state alike and a reconnecting client's
// Last-Event-ID tells whether it already has it.
func ContentID(data []byte) string {
	h := fnv.New64a()
	_, _ = h.Write(data)
	return strconv.FormatUint(h.Sum64(), 36)
}

// Frame is the event as written on an SSE stream.
func (e *Event) Frame() []byte { return e.frame }

// encode is the event as a pub/sub message: topic, name and id on a line
// each, then the data.
func (e *Event) encode() string {
	return e.Topic + "\n" + e.Name + "\n" + e.ID + "\n" + string(e.Data)
}

var errMalformed = errors.New("live: malformed message")

// decode reads a pub/sub message that encode made.
func decode(msg string) (*Event, error) {
	parts := bytes.SplitN([]byte(msg), []byte("\n"), 4)
	if len(parts) != 4 || len(parts[0]) == 0 || bytes.ContainsAny(parts[3], "\r\n") {
		return nil, errMalformed
	}
	return NewEvent(string(parts[0]), string(parts[1]), string(parts[2]), parts[3]), nil
}

// OrderTopic is the topic of an order's transitions.
func OrderTopic(id string) string { return "order:" + id }

// SaleTopic is the topic of a sale's stock and state.
func SaleTopic(id string) string { return "sale:" + id }
