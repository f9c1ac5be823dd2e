// Package cloudevent is the one CloudEvents 1.0 structured-mode JSON
// envelope of the service: the relay (outbox) writes it to Kafka, the
// consumers (consumer/inbox) read it back, and the webhook sender (notify)
// posts it. It knows nothing of order events or of Kafka, so that the
// writer and the readers share it without importing each other.
package cloudevent

import "encoding/json"

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// ContentType marks a whole message or request body as one structured-mode
// CloudEvent (the content-type header under the Kafka protocol binding,
// the Content-Type of a webhook).
const ContentType = "application/cloudevents+json"

// DataContentTypeJSON is the datacontenttype of JSON data.
const DataContentTypeJSON = "application/json"

// Envelope is a CloudEvents 1.0 structured-mode event (docs/events.md).
// Subject and DataSchema are left out when empty: the relay always sets
// them, the webhook body, built from what a consumer read, has no schema.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data"`
}
