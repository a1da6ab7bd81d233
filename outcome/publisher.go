package outcome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// Config names where outcomes go.
type Config struct {
	// ResultStream is the stream of results, read back when a result
	// turns out to be a repeat. Defaults to schemas.DefaultResultStream.
	ResultStream string
	// ResultSubjectPrefix is followed by ".<conferenceID>". Defaults to
	// schemas.DefaultResultSubjectPrefix.
	ResultSubjectPrefix string
	// DeadLetterSubjectPrefix is followed by ".<conferenceID>" or
	// "._invalid". Defaults to schemas.DefaultDeadLetterSubjectPrefix.
	DeadLetterSubjectPrefix string
}

func (c *Config) setDefaults() {
	if c.ResultStream == "" {
		c.ResultStream = schemas.DefaultResultStream
	}
	if c.ResultSubjectPrefix == "" {
		c.ResultSubjectPrefix = schemas.DefaultResultSubjectPrefix
	}
	if c.DeadLetterSubjectPrefix == "" {
		c.DeadLetterSubjectPrefix = schemas.DefaultDeadLetterSubjectPrefix
	}
}

// Publisher publishes result events and dead letters and waits for the
// stream to confirm each one.
type Publisher struct {
	js  jetstream.JetStream
	cfg Config
}

// NewPublisher returns a Publisher that publishes through js.
func NewPublisher(cfg Config, js jetstream.JetStream) (*Publisher, error) {
	if js == nil {
		return nil, errors.New("outcome: JetStream handle is nil")
	}
	cfg.setDefaults()
	return &Publisher{js: js, cfg: cfg}, nil
}

// PublishResult publishes r with Nats-Msg-Id set to its request ID and
// returns once the results stream has stored it. When the stream drops it
// as a repeat (the request was decided before, and its ack was lost), it
// returns the result stored first, which is the one that counts. When ctx
// holds a span (the request's), the message carries its traceparent and
// tracestate.
func (p *Publisher) PublishResult(ctx context.Context, r *schemas.Result) (*schemas.Result, error) {
	// MarshalJSON directly: json.Marshal would check and compact its
	// output once more.
	data, err := r.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode result %s: %w", r.RequestID, err)
	}
	out := &nats.Msg{Subject: p.cfg.ResultSubjectPrefix + "." + r.ConferenceID, Data: data, Header: traceHeader(ctx)}
	ack, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(r.RequestID))
	if err != nil {
		return nil, fmt.Errorf("publish result %s: %w", r.RequestID, err)
	}
	if !ack.Duplicate {
		return nil, nil
	}
	stream, err := p.js.Stream(ctx, p.cfg.ResultStream)
	if err != nil {
		return nil, fmt.Errorf("read first result of %s: %w", r.RequestID, err)
	}
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return nil, fmt.Errorf("read first result of %s: %w", r.RequestID, err)
	}
	var first schemas.Result
	if err := json.Unmarshal(msg.Data, &first); err != nil {
		return nil, fmt.Errorf("read first result of %s: %w", r.RequestID, err)
	}
	return &first, nil
}

// PublishDeadLetter publishes dl with Nats-Msg-Id msgID and returns once
// the dead-letter stream has stored it (or dropped it as a repeat). The
// subject's last token is dl.ConferenceID, or "_invalid" when it is empty.
// When ctx holds a span, the message carries its traceparent and
// tracestate.
func (p *Publisher) PublishDeadLetter(ctx context.Context, dl *schemas.DeadLetter, msgID string) error {
	data, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter %s: %w", msgID, err)
	}
	conf := dl.ConferenceID
	if conf == "" {
		conf = schemas.InvalidConferenceToken
	}
	msg := &nats.Msg{Subject: p.cfg.DeadLetterSubjectPrefix + "." + conf, Data: data, Header: traceHeader(ctx)}
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", msgID, err)
	}
	return nil
}

// InvalidMsgID is the Nats-Msg-Id of the dead letter of an invalid message:
// derived from the message's place in its stream, so that a redelivered
// invalid message is dead-lettered once. It contains "/", which no request
// ID may contain, so it never collides with the dead letter of a valid
// request (whose Nats-Msg-Id is its request ID).
func InvalidMsgID(stream string, seq uint64) string {
	return fmt.Sprintf("invalid/%s/%d", stream, seq)
}
