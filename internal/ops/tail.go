package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// TailConfig says which outcome events to follow.
type TailConfig struct {
	// ResultStream and ResultSubjectPrefix name where results are.
	// Default to schemas.DefaultResultStream and
	// schemas.DefaultResultSubjectPrefix.
	ResultStream        string
	ResultSubjectPrefix string
	// DeadLetterStream and DeadLetterSubjectPrefix name where dead letters
	// are. Default to schemas.DefaultDeadLetterStream and
	// schemas.DefaultDeadLetterSubjectPrefix.
	DeadLetterStream        string
	DeadLetterSubjectPrefix string
	// DeadLetters follows dead letters instead of results. Defaults to
	// false.
	DeadLetters bool
	// Conference keeps the events of one conference. Defaults to "" (all).
	Conference string
	// Status keeps the results of one status; results only. Defaults to
	// "" (all).
	Status schemas.Status
	// Reason keeps the dead letters of one reason; dead letters only.
	// Defaults to "" (all).
	Reason schemas.DeadLetterReason
	// Since starts with the events stored from then on. Defaults to the
	// zero time: only events stored after Tail began.
	Since time.Time
	// Count stops after that many events. Defaults to 0: Tail runs until
	// its context ends.
	Count int
}

func (c *TailConfig) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ResultStream, schemas.DefaultResultStream)
	def(&c.ResultSubjectPrefix, schemas.DefaultResultSubjectPrefix)
	def(&c.DeadLetterStream, schemas.DefaultDeadLetterStream)
	def(&c.DeadLetterSubjectPrefix, schemas.DefaultDeadLetterSubjectPrefix)
}

// Validate checks the filters; each error starts with the field's name.
func (c *TailConfig) Validate() error {
	var errs []error
	if c.Status != "" {
		if c.DeadLetters {
			errs = append(errs, errors.New("Status: dead letters have no status; filter them by reason"))
		} else if !validStatus(c.Status) {
			errs = append(errs, fmt.Errorf("Status: must be succeeded, failed or expired, got %q", c.Status))
		}
	}
	if c.Reason != "" {
		if !c.DeadLetters {
			errs = append(errs, errors.New("Reason: results have no reason; follow dead letters to filter by reason"))
		} else if !validReason(c.Reason) {
			errs = append(errs, fmt.Errorf("Reason: %w", reasonError(c.Reason)))
		}
	}
	if c.Conference != "" {
		if err := schemas.ValidateConferenceID(c.Conference); err != nil {
			errs = append(errs, fmt.Errorf("Conference: %w", err))
		}
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("Count: must not be negative, got %d", c.Count))
	}
	return errors.Join(errs...)
}

func validStatus(s schemas.Status) bool {
	switch s {
	case schemas.StatusSucceeded, schemas.StatusFailed, schemas.StatusExpired:
		return true
	}
	return false
}

func validReason(r schemas.DeadLetterReason) bool {
	switch r {
	case schemas.ReasonInvalidRequest, schemas.ReasonRejected, schemas.ReasonRetriesExhausted, schemas.ReasonMaxDeliveries:
		return true
	}
	return false
}

func reasonError(r schemas.DeadLetterReason) error {
	return fmt.Errorf("must be %s, %s, %s or %s, got %q", schemas.ReasonInvalidRequest, schemas.ReasonRejected,
		schemas.ReasonRetriesExhausted, schemas.ReasonMaxDeliveries, r)
}

// Event is one outcome event as stored.
type Event struct {
	Stream   string    `json:"stream"`
	Sequence uint64    `json:"sequence"`
	Time     time.Time `json:"time"`
	Subject  string    `json:"subject"`
	// Result or DeadLetter is the event as stored.
	Result     json.RawMessage `json:"result,omitempty"`
	DeadLetter json.RawMessage `json:"deadLetter,omitempty"`
	// Error says why the stored message is not an event of its stream;
	// PayloadBase64 then holds it.
	Error         string `json:"error,omitempty"`
	PayloadBase64 string `json:"payloadBase64,omitempty"`

	result     *schemas.Result
	deadLetter *schemas.DeadLetter
}

// newEvent reads a stored message of the result stream, or of the
// dead-letter stream when deadLetter is true.
func newEvent(stream, subject string, seq uint64, at time.Time, data []byte, deadLetter bool) *Event {
	ev := &Event{Stream: stream, Sequence: seq, Time: at.UTC(), Subject: subject}
	var err error
	if deadLetter {
		var dl schemas.DeadLetter
		if err = json.Unmarshal(data, &dl); err == nil {
			ev.DeadLetter, ev.deadLetter = json.RawMessage(data), &dl
		}
	} else {
		var r schemas.Result
		if err = json.Unmarshal(data, &r); err == nil {
			ev.Result, ev.result = json.RawMessage(data), &r
		}
	}
	if err != nil {
		ev.Error = "not an outcome event: " + err.Error()
		ev.PayloadBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return ev
}

// keep reports whether ev passes the status and reason filters.
func (c *TailConfig) keep(ev *Event) bool {
	switch {
	case c.Status != "":
		return ev.result != nil && ev.result.Status == c.Status
	case c.Reason != "":
		return ev.deadLetter != nil && ev.deadLetter.Reason == c.Reason
	}
	return true
}

func (ev *Event) text() string {
	head := fmt.Sprintf("%s #%d", ev.Time.Format(time.RFC3339Nano), ev.Sequence)
	switch {
	case ev.result != nil:
		r := ev.result
		var b strings.Builder
		fmt.Fprintf(&b, "%s result %s %s %s: %d disconnected, %d already gone, %d failed, %d calls",
			head, r.ConferenceID, r.RequestID, r.Status, len(r.Disconnected), len(r.AlreadyGone), len(r.FailedParticipantIDs), r.Attempts)
		if r.ErrorCode != "" || r.ErrorMessage != "" {
			fmt.Fprintf(&b, "; %s", strings.TrimSpace(r.ErrorCode+" "+r.ErrorMessage))
		}
		if r.ReplayOf != "" {
			fmt.Fprintf(&b, " (replay of %s)", r.ReplayOf)
		}
		return b.String()
	case ev.deadLetter != nil:
		dl := ev.deadLetter
		return fmt.Sprintf("%s dead letter %s %s %s: %s", head, orDash(dl.ConferenceID), orDash(dl.RequestID), dl.Reason, dl.Error)
	}
	return fmt.Sprintf("%s %s on %s: %s", head, ev.Stream, ev.Subject, ev.Error)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Tail follows the results (or dead letters) through an ordered consumer,
// which leaves nothing behind on the server, and writes each event that
// passes the filters. It returns when Count events were written, or nil
// when ctx ends.
func Tail(ctx context.Context, js jetstream.JetStream, cfg TailConfig, out Output) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	stream, prefix := cfg.ResultStream, cfg.ResultSubjectPrefix
	if cfg.DeadLetters {
		stream, prefix = cfg.DeadLetterStream, cfg.DeadLetterSubjectPrefix
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if !cfg.Since.IsZero() {
		since := cfg.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	if cfg.Conference != "" {
		occ.FilterSubjects = []string{prefix + "." + cfg.Conference}
	}
	cons, err := st.OrderedConsumer(ctx, occ)
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	defer msgs.Stop()
	for n := 0; cfg.Count == 0 || n < cfg.Count; {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		ev := newEvent(stream, msg.Subject(), meta.Sequence.Stream, meta.Timestamp, msg.Data(), cfg.DeadLetters)
		if !cfg.keep(ev) {
			continue
		}
		if err := out.emit(ev, ev.text()); err != nil {
			return err
		}
		n++
	}
	return nil
}
