package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/hangup-dev/hangup/schemas"
)

// PublishConfig says where requests go and how they are checked.
type PublishConfig struct {
	// SubjectPrefix: a request goes to <prefix>.<conferenceID>. Defaults
	// to schemas.DefaultRequestSubjectPrefix.
	SubjectPrefix string
	// MaxParticipants is the participant limit the requests are checked
	// against: the workers' --max-participants. Defaults to
	// schemas.DefaultMaxParticipants.
	MaxParticipants int
	// Token goes in the X-Conference-Authorization header of every
	// request; it is never printed. Without it the workers use the
	// conference's stored credentials. Defaults to "" (no header).
	Token string
}

func (c PublishConfig) withDefaults() PublishConfig {
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = schemas.DefaultRequestSubjectPrefix
	}
	if c.MaxParticipants < 1 {
		c.MaxParticipants = schemas.DefaultMaxParticipants
	}
	return c
}

func (c PublishConfig) decodeOptions() schemas.DecodeOptions {
	return schemas.DecodeOptions{SubjectPrefix: c.SubjectPrefix, MaxParticipants: c.MaxParticipants}
}

// Draft is a request that the worker's decoder accepted, ready to publish.
type Draft struct {
	// Subject is <prefix>.<conferenceID>.
	Subject string
	// Request is the request as the worker will read it.
	Request *schemas.Request
	// Payload is what is published.
	Payload []byte
}

// NewDraft encodes req and checks it with the worker's decoder; the error
// is the decoder's own, naming the field.
func NewDraft(req schemas.Request, cfg PublishConfig) (Draft, error) {
	cfg = cfg.withDefaults()
	payload, err := json.Marshal(req)
	if err != nil {
		return Draft{}, fmt.Errorf("encode request: %w", err)
	}
	return checkDraft(payload, cfg)
}

// checkDraft decodes payload as the worker will on the subject its
// conferenceID names.
func checkDraft(payload []byte, cfg PublishConfig) (Draft, error) {
	subject := cfg.SubjectPrefix + "." + peekConferenceID(payload)
	req, err := schemas.DecodeRequest(subject, payload, cfg.decodeOptions())
	if err != nil {
		return Draft{}, err
	}
	return Draft{Subject: subject, Request: req, Payload: payload}, nil
}

// peekConferenceID is the conferenceID of payload when it holds one as a
// string, else "": the decoder then says what is wrong with it.
func peekConferenceID(payload []byte) string {
	var peek struct {
		ConferenceID any `json:"conferenceID"`
	}
	if json.Unmarshal(payload, &peek) != nil {
		return ""
	}
	s, _ := peek.ConferenceID.(string)
	return s
}

// ReadDrafts reads requests from r, one JSON object per line (blank lines
// are skipped), and checks every one before it returns: either all are
// valid, or the error names the first line that is not, with the
// decoder's words.
func ReadDrafts(r io.Reader, cfg PublishConfig) ([]Draft, error) {
	cfg = cfg.withDefaults()
	sc := bufio.NewScanner(r)
	// Room for a line past the payload limit, so that the decoder, not
	// the scanner, says it is too long.
	sc.Buffer(make([]byte, 0, 64*1024), 4*schemas.MaxPayloadBytes)
	var drafts []Draft
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		d, err := checkDraft(bytes.Clone(text), cfg)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		drafts = append(drafts, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	if len(drafts) == 0 {
		return nil, errors.New("read requests: no request in the input")
	}
	return drafts, nil
}

// Published is what the request stream said about one request.
type Published struct {
	RequestID    string `json:"requestID"`
	ConferenceID string `json:"conferenceID"`
	Subject      string `json:"subject"`
	Stream       string `json:"stream"`
	Sequence     uint64 `json:"sequence"`
	// Duplicate: the stream already held a request with this ID within its
	// duplicate window and dropped this one; Sequence is the first one's.
	Duplicate bool   `json:"duplicate"`
	ReplayOf  string `json:"replayOf,omitempty"`
}

func (p Published) text() string {
	if p.Duplicate {
		return fmt.Sprintf("duplicate %s (conference %s): the stream %s already holds it at sequence %d; not stored again",
			p.RequestID, p.ConferenceID, p.Stream, p.Sequence)
	}
	return fmt.Sprintf("published %s (conference %s): stream %s, sequence %d", p.RequestID, p.ConferenceID, p.Stream, p.Sequence)
}

// publishDraft publishes d with Nats-Msg-Id set to its request ID and the
// token, if any, in X-Conference-Authorization, and waits for the
// stream's ack.
func publishDraft(ctx context.Context, js jetstream.JetStream, d Draft, token string) (Published, error) {
	msg := nats.NewMsg(d.Subject)
	msg.Data = d.Payload
	msg.Header.Set(schemas.MsgIDHeader, d.Request.RequestID)
	if token != "" {
		msg.Header.Set(schemas.TokenHeader, token)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return Published{}, fmt.Errorf("publish request %s: %w", d.Request.RequestID, err)
	}
	return Published{
		RequestID: d.Request.RequestID, ConferenceID: d.Request.ConferenceID, Subject: d.Subject,
		Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate, ReplayOf: d.Request.ReplayOf,
	}, nil
}

// Publish publishes the drafts in order, each with Nats-Msg-Id set to its
// request ID as the contract asks, and reports the stream sequence of
// each, or that the stream dropped it as a duplicate. It stops at the
// first error; the requests before it are published.
func Publish(ctx context.Context, js jetstream.JetStream, drafts []Draft, cfg PublishConfig, out Output) error {
	for _, d := range drafts {
		p, err := publishDraft(ctx, js, d, cfg.Token)
		if err != nil {
			return err
		}
		if err := out.emit(p, p.text()); err != nil {
			return err
		}
	}
	return nil
}

// NewRequestID is a fresh request ID for a request published by hand.
func NewRequestID() string {
	return "cli-" + nuid.Next()
}
