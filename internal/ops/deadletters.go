package ops

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// DeadLetterConfig names where dead letters are and where their requests
// are published again.
type DeadLetterConfig struct {
	// Stream is the dead-letter stream. Defaults to
	// schemas.DefaultDeadLetterStream.
	Stream string
	// SubjectPrefix: dead letters are on <prefix>.<conferenceID>. Defaults
	// to schemas.DefaultDeadLetterSubjectPrefix.
	SubjectPrefix string
	// RequestSubjectPrefix: replays are published to
	// <prefix>.<conferenceID>, and the original request is read as the
	// worker read it under this prefix. Defaults to
	// schemas.DefaultRequestSubjectPrefix.
	RequestSubjectPrefix string
	// MaxParticipants is the participant limit a replay is checked
	// against: the workers' --max-participants. Defaults to
	// schemas.DefaultMaxParticipants.
	MaxParticipants int
	// ReplayBucket records the replays. Defaults to DefaultReplayBucket.
	ReplayBucket string
	// Replicas of the replay bucket when a replay creates it. Defaults to 1.
	Replicas int
	// MaxAge of the replay bucket's entries when a replay creates it: the
	// dead letters' age limit. Defaults to 30 days.
	MaxAge time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

func (c *DeadLetterConfig) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Stream, schemas.DefaultDeadLetterStream)
	def(&c.SubjectPrefix, schemas.DefaultDeadLetterSubjectPrefix)
	def(&c.RequestSubjectPrefix, schemas.DefaultRequestSubjectPrefix)
	def(&c.ReplayBucket, DefaultReplayBucket)
	if c.MaxParticipants < 1 {
		c.MaxParticipants = schemas.DefaultMaxParticipants
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DeadLetters reads the dead-letter stream and replays what it holds.
type DeadLetters struct {
	js  jetstream.JetStream
	cfg DeadLetterConfig
}

// NewDeadLetters returns a DeadLetters that works through js.
func NewDeadLetters(cfg DeadLetterConfig, js jetstream.JetStream) (*DeadLetters, error) {
	if js == nil {
		return nil, errors.New("dead letters: JetStream handle is nil")
	}
	cfg.setDefaults()
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("dead letters config: Replicas must be between 1 and 5, got %d", cfg.Replicas)
	}
	return &DeadLetters{js: js, cfg: cfg}, nil
}

// Filter selects dead letters; the zero Filter selects all.
type Filter struct {
	// Reason keeps the dead letters of one reason.
	Reason schemas.DeadLetterReason
	// Conference keeps the dead letters of one conference.
	Conference string
	// Since and Until keep the dead letters stored in [Since, Until].
	Since, Until time.Time
}

// Validate checks the filter.
func (f Filter) Validate() error {
	var errs []error
	if f.Reason != "" && !validReason(f.Reason) {
		errs = append(errs, fmt.Errorf("Reason: %w", reasonError(f.Reason)))
	}
	if f.Conference != "" {
		if err := schemas.ValidateConferenceID(f.Conference); err != nil {
			errs = append(errs, fmt.Errorf("Conference: %w", err))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		errs = append(errs, fmt.Errorf("Until: %s is before Since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// Entry is one message of the dead-letter stream.
type Entry struct {
	Sequence uint64
	Time     time.Time
	Subject  string
	// Headers are the headers of the dead-letter message itself.
	Headers map[string][]string
	// Data is the message as stored.
	Data []byte
	// DeadLetter is Data decoded; nil when it is not a dead letter.
	DeadLetter *schemas.DeadLetter
	// Request is the original request when the worker's decoder accepts
	// it; a replay publishes it again.
	Request *schemas.Request
	// NotReplayable says why the dead letter cannot be replayed: its
	// message is not a valid request (the decoder's words), or it is not
	// a dead letter at all. Empty when Request is set.
	NotReplayable string
	// Replays are the replays of its request ID so far; nil when none.
	Replays *ReplayRecord
}

// newEntry reads a stored dead letter and what its original message is.
func (d *DeadLetters) newEntry(seq uint64, at time.Time, subject string, headers map[string][]string, data []byte) *Entry {
	e := &Entry{Sequence: seq, Time: at.UTC(), Subject: subject, Headers: headers, Data: data}
	var dl schemas.DeadLetter
	if err := json.Unmarshal(data, &dl); err != nil {
		e.NotReplayable = "not a dead letter: " + err.Error()
		return e
	}
	e.DeadLetter = &dl
	payload := []byte(dl.Request)
	if len(payload) == 0 && dl.PayloadBase64 != "" {
		raw, err := base64.StdEncoding.DecodeString(dl.PayloadBase64)
		if err != nil {
			e.NotReplayable = "payloadBase64 is not base64: " + err.Error()
			return e
		}
		payload = raw
	}
	req, err := schemas.DecodeRequest(dl.Subject, payload, schemas.DecodeOptions{
		SubjectPrefix: d.cfg.RequestSubjectPrefix, MaxParticipants: d.cfg.MaxParticipants,
	})
	if err != nil {
		e.NotReplayable = "not a valid request: " + err.Error()
		return e
	}
	e.Request = req
	return e
}

// List returns the dead letters the filter selects, oldest first, each
// with its replays. It reads through a consumer of its own that it
// deletes again.
func (d *DeadLetters) List(ctx context.Context, f Filter) ([]*Entry, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	log, err := openReplayLog(ctx, d.js, d.cfg.ReplayBucket)
	if err != nil {
		return nil, err
	}
	st, err := d.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", d.cfg.Stream, err)
	}
	cc := jetstream.ConsumerConfig{
		Description:       "hangup dlq list",
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	if !f.Since.IsZero() {
		since := f.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	if f.Conference != "" {
		cc.FilterSubject = d.cfg.SubjectPrefix + "." + f.Conference
	}
	cons, err := st.CreateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.cfg.Stream, err)
	}
	name := cons.CachedInfo().Name
	defer func() { _ = st.DeleteConsumer(context.WithoutCancel(ctx), name) }()

	var entries []*Entry
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", d.cfg.Stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			pending--
			meta, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", d.cfg.Stream, err)
			}
			if !f.Until.IsZero() && meta.Timestamp.After(f.Until) {
				pending = 0 // the stream is in time order
				break
			}
			e := d.newEntry(meta.Sequence.Stream, meta.Timestamp, msg.Subject(), msg.Headers(), msg.Data())
			if f.Reason != "" && (e.DeadLetter == nil || e.DeadLetter.Reason != f.Reason) {
				continue
			}
			entries = append(entries, e)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read %s: %w", d.cfg.Stream, err)
		}
		if got == 0 && pending > 0 {
			return nil, fmt.Errorf("read %s: %d dead letters announced but not delivered", d.cfg.Stream, pending)
		}
	}
	for _, e := range entries {
		if err := d.loadReplays(ctx, log, e); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// Get returns the dead letter at sequence seq of the dead-letter stream.
func (d *DeadLetters) Get(ctx context.Context, seq uint64) (*Entry, error) {
	st, err := d.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", d.cfg.Stream, err)
	}
	msg, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %d: there is no message at that sequence in %s", seq, d.cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	log, err := openReplayLog(ctx, d.js, d.cfg.ReplayBucket)
	if err != nil {
		return nil, err
	}
	e := d.newEntry(msg.Sequence, msg.Time, msg.Subject, msg.Header, msg.Data)
	if err := d.loadReplays(ctx, log, e); err != nil {
		return nil, err
	}
	return e, nil
}

func (d *DeadLetters) loadReplays(ctx context.Context, log *replayLog, e *Entry) error {
	if e.Request == nil {
		return nil
	}
	rec, _, err := log.get(ctx, e.Request.RequestID)
	if err != nil {
		return err
	}
	e.Replays = rec
	return nil
}

// listItem is how an Entry is listed.
type listItem struct {
	Sequence      uint64                   `json:"sequence"`
	Time          time.Time                `json:"time"`
	ConferenceID  string                   `json:"conferenceID,omitempty"`
	RequestID     string                   `json:"requestID,omitempty"`
	Reason        schemas.DeadLetterReason `json:"reason,omitempty"`
	Error         string                   `json:"error,omitempty"`
	Replayable    bool                     `json:"replayable"`
	NotReplayable string                   `json:"notReplayable,omitempty"`
	Replays       []Replay                 `json:"replays,omitempty"`
}

func (e *Entry) item() listItem {
	it := listItem{Sequence: e.Sequence, Time: e.Time, Replayable: e.Request != nil, NotReplayable: e.NotReplayable}
	if dl := e.DeadLetter; dl != nil {
		it.ConferenceID, it.RequestID, it.Reason, it.Error = dl.ConferenceID, dl.RequestID, dl.Reason, dl.Error
	}
	if e.Replays != nil {
		it.Replays = e.Replays.Replays
	}
	return it
}

func (e *Entry) text() string {
	it := e.item()
	state := "not replayed"
	switch {
	case e.NotReplayable != "":
		state = "cannot be replayed: " + e.NotReplayable
	case e.Replays != nil:
		last := e.Replays.Last()
		state = fmt.Sprintf("replayed as %s at %s", last.RequestID, last.At.UTC().Format(time.RFC3339))
		if n := len(e.Replays.Replays); n > 1 {
			state += fmt.Sprintf(" (%d replays)", n)
		}
	}
	return fmt.Sprintf("#%d  %s  %s  %s  %s  %s", it.Sequence, it.Time.Format(time.RFC3339), orDash(it.ConferenceID),
		orDash(it.RequestID), orDash(string(it.Reason)), state)
}

// WriteList writes one line per entry.
func WriteList(out Output, entries []*Entry) error {
	for _, e := range entries {
		if err := out.emit(e.item(), e.text()); err != nil {
			return err
		}
	}
	return out.note("%d dead letters", len(entries))
}

// shown is how Show writes an Entry.
type shown struct {
	Sequence uint64              `json:"sequence"`
	Time     time.Time           `json:"time"`
	Subject  string              `json:"subject"`
	Headers  map[string][]string `json:"headers,omitempty"`
	// DeadLetter is the message as stored, or base64 when it is not JSON.
	DeadLetter    json.RawMessage `json:"deadLetter,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
	Replayable    bool            `json:"replayable"`
	NotReplayable string          `json:"notReplayable,omitempty"`
	Replays       []Replay        `json:"replays,omitempty"`
}

// WriteEntry writes one dead letter in full: the stored JSON with the
// headers of the original message, and the headers of the dead-letter
// message. The worker stores dead letters with secrets redacted; any
// secret header that still holds a value is redacted here as well.
func WriteEntry(out Output, e *Entry) error {
	s := shown{
		Sequence: e.Sequence, Time: e.Time, Subject: e.Subject, Headers: outcome.RedactHeaders(e.Headers),
		Replayable: e.Request != nil, NotReplayable: e.NotReplayable,
	}
	if e.Replays != nil {
		s.Replays = e.Replays.Replays
	}
	stored := redactStored(e)
	if json.Valid(stored) {
		s.DeadLetter = stored
	} else {
		s.PayloadBase64 = base64.StdEncoding.EncodeToString(stored)
	}
	if out.JSON {
		return out.emit(s, "")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "dead letter #%d, stored %s on %s\n", s.Sequence, s.Time.Format(time.RFC3339Nano), s.Subject)
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
		for _, v := range s.Headers[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	if s.DeadLetter != nil {
		if err := json.Indent(&b, s.DeadLetter, "", "  "); err != nil {
			return fmt.Errorf("indent dead letter: %w", err)
		}
		b.WriteByte('\n')
	} else {
		fmt.Fprintf(&b, "payload (base64, not JSON): %s\n", s.PayloadBase64)
	}
	switch {
	case e.NotReplayable != "":
		fmt.Fprintf(&b, "cannot be replayed: %s\n", e.NotReplayable)
	case e.Replays != nil:
		for _, r := range e.Replays.Replays {
			fmt.Fprintf(&b, "replayed as %s at %s\n", r.RequestID, r.At.UTC().Format(time.RFC3339))
		}
	default:
		b.WriteString("not replayed\n")
	}
	_, err := out.W.Write(b.Bytes())
	return err
}

// redactStored returns the stored dead letter, re-encoded with its secret
// headers redacted if one of them holds anything but the redaction mark.
func redactStored(e *Entry) []byte {
	if e.DeadLetter == nil {
		return e.Data
	}
	clean := true
	for k, vs := range e.DeadLetter.Headers {
		if outcome.IsSecretHeader(k) && (len(vs) != 1 || vs[0] != schemas.Redacted) {
			clean = false
		}
	}
	if clean {
		return e.Data
	}
	var fields map[string]json.RawMessage
	err := json.Unmarshal(e.Data, &fields)
	if err == nil {
		fields["headers"], err = json.Marshal(outcome.RedactHeaders(e.DeadLetter.Headers))
	}
	var out []byte
	if err == nil {
		out, err = json.Marshal(fields)
	}
	if err != nil {
		// Never the stored bytes: they hold a secret.
		return []byte(`{"error":"the stored dead letter holds a secret header that could not be redacted"}`)
	}
	return out
}
