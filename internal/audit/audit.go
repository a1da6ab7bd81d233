package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/schemas"
)

// Snapshot is everything in the two outcome streams.
type Snapshot struct {
	Results     []schemas.Result
	DeadLetters []schemas.DeadLetter
	// Raw holds every outcome message as published, for secret scans.
	Raw [][]byte
}

// Read reads every message of the result and dead-letter streams.
func Read(ctx context.Context, js jetstream.JetStream, resultStream, deadLetterStream string) (*Snapshot, error) {
	s := &Snapshot{}
	err := readAll(ctx, js, resultStream, func(data []byte) error {
		var r schemas.Result
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("result: %w", err)
		}
		s.Results = append(s.Results, r)
		s.Raw = append(s.Raw, data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readAll(ctx, js, deadLetterStream, func(data []byte) error {
		var d schemas.DeadLetter
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		s.DeadLetters = append(s.DeadLetters, d)
		s.Raw = append(s.Raw, data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func readAll(ctx context.Context, js jetstream.JetStream, stream string, fn func([]byte) error) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", stream, err)
	}
	total := info.State.Msgs
	if total == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	var n uint64
	for n < total {
		batch, err := cons.Fetch(int(min(total-n, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			n++
			if err := fn(msg.Data()); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if got == 0 {
			return fmt.Errorf("read %s: %d of %d messages read, then none", stream, n, total)
		}
	}
	return nil
}

// Sent is a valid request as published.
type Sent struct {
	ConferenceID   string
	ParticipantIDs []string
}

// Expect is what was published and what the API did.
type Expect struct {
	// Valid maps each valid request ID to what it asked.
	Valid map[string]Sent
	// Invalid is how many invalid messages were published.
	Invalid int
	// Disconnected is every participant the API really removed, per
	// conference: no one else may be reported disconnected or gone, except
	// those in NeverOnline.
	Disconnected map[string]map[string]bool
	// NeverOnline are requested participants who were never in the
	// meeting: the API may answer for them without removing anyone.
	NeverOnline map[string]map[string]bool
	// Secrets must appear in no outcome.
	Secrets []string
}

// Report counts what the snapshot holds.
type Report struct {
	Results       int
	ByStatus      map[schemas.Status]int
	DeadLetters   int
	ByReason      map[schemas.DeadLetterReason]int
	Disconnected  int // participants the API removed
	Requested     int // distinct participants requested
	NotRequested  int // removed by the API but never requested
	Violations    []string
	LatencyMedian time.Duration
	LatencyP99    time.Duration
}

// OK reports whether the invariant holds.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Check verifies the invariant: every valid request has exactly one result;
// a failed one exactly one dead letter, a succeeded or expired one none;
// every invalid message exactly one dead letter and no result; no
// participant is reported disconnected or gone unless the API removed them,
// and the API removed no one who was never requested; no secret appears.
func Check(s *Snapshot, e Expect) *Report {
	rep := &Report{ByStatus: map[schemas.Status]int{}, ByReason: map[schemas.DeadLetterReason]int{}}
	violate := func(format string, args ...any) {
		if len(rep.Violations) < 50 {
			rep.Violations = append(rep.Violations, fmt.Sprintf(format, args...))
		}
	}
	results := map[string]int{}
	var latencies []time.Duration
	for _, r := range s.Results {
		rep.Results++
		rep.ByStatus[r.Status]++
		results[r.RequestID]++
		sent, ok := e.Valid[r.RequestID]
		if !ok {
			violate("result for unknown request %q", r.RequestID)
			continue
		}
		if r.ConferenceID != sent.ConferenceID {
			violate("result %s: conference %q, sent %q", r.RequestID, r.ConferenceID, sent.ConferenceID)
		}
		checkPartition(r, sent, e.Disconnected, e.NeverOnline, violate)
		if !r.ReceivedAt.IsZero() && !r.CompletedAt.IsZero() {
			latencies = append(latencies, r.CompletedAt.Sub(r.ReceivedAt))
		}
	}
	for id, n := range results {
		if n > 1 {
			violate("request %s: %d results", id, n)
		}
	}
	for id := range e.Valid {
		if results[id] == 0 {
			violate("request %s: no result", id)
		}
	}
	dlByRequest := map[string]int{}
	invalid := 0
	for _, d := range s.DeadLetters {
		rep.DeadLetters++
		rep.ByReason[d.Reason]++
		if _, ok := e.Valid[d.RequestID]; ok && d.Reason != schemas.ReasonInvalidRequest {
			dlByRequest[d.RequestID]++
			continue
		}
		if d.Reason != schemas.ReasonInvalidRequest {
			violate("dead letter with reason %s for unknown request %q", d.Reason, d.RequestID)
			continue
		}
		invalid++
	}
	if invalid != e.Invalid {
		violate("%d invalid messages published, %d dead-lettered as invalid", e.Invalid, invalid)
	}
	for _, r := range s.Results {
		want := 0
		if r.Status == schemas.StatusFailed {
			want = 1
		}
		if results[r.RequestID] == 1 && dlByRequest[r.RequestID] != want {
			violate("request %s (%s): %d dead letters, want %d", r.RequestID, r.Status, dlByRequest[r.RequestID], want)
		}
	}
	if e.Disconnected != nil {
		requested := map[string]map[string]bool{}
		for _, sent := range e.Valid {
			if requested[sent.ConferenceID] == nil {
				requested[sent.ConferenceID] = map[string]bool{}
			}
			for _, p := range sent.ParticipantIDs {
				requested[sent.ConferenceID][p] = true
			}
		}
		for _, ps := range requested {
			rep.Requested += len(ps)
		}
		for conf, ps := range e.Disconnected {
			for p := range ps {
				rep.Disconnected++
				if !requested[conf][p] {
					rep.NotRequested++
					violate("participant %s of %s was disconnected but never requested", p, conf)
				}
			}
		}
	}
	for _, raw := range s.Raw {
		for _, secret := range e.Secrets {
			if secret != "" && bytes.Contains(raw, []byte(secret)) {
				violate("a secret appears in an outcome event")
				break
			}
		}
	}
	if len(latencies) > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		rep.LatencyMedian = latencies[len(latencies)/2]
		rep.LatencyP99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	}
	return rep
}

func checkPartition(r schemas.Result, sent Sent, removed, absent map[string]map[string]bool, violate func(string, ...any)) {
	seen := map[string]int{}
	for _, group := range [][]string{r.Disconnected, r.AlreadyGone, r.FailedParticipantIDs} {
		for _, p := range group {
			seen[p]++
		}
	}
	for p, n := range seen {
		if n > 1 {
			violate("result %s: participant %s reported %d times", r.RequestID, p, n)
		}
		if !slices.Contains(sent.ParticipantIDs, p) {
			violate("result %s: participant %s was not requested", r.RequestID, p)
		}
	}
	switch r.Status {
	case schemas.StatusSucceeded:
		if len(r.FailedParticipantIDs) > 0 {
			violate("result %s: succeeded with failed participants", r.RequestID)
		}
		fallthrough
	case schemas.StatusFailed:
		for _, p := range sent.ParticipantIDs {
			if seen[p] == 0 {
				violate("result %s (%s): participant %s has no outcome", r.RequestID, r.Status, p)
			}
		}
		if r.Status == schemas.StatusFailed && len(r.FailedParticipantIDs) == 0 {
			violate("result %s: failed without failed participants", r.RequestID)
		}
	case schemas.StatusExpired:
	default:
		violate("result %s: unknown status %q", r.RequestID, r.Status)
	}
	if removed == nil {
		return
	}
	for _, group := range [][]string{r.Disconnected, r.AlreadyGone} {
		for _, p := range group {
			if !removed[r.ConferenceID][p] && !absent[r.ConferenceID][p] {
				violate("result %s: participant %s reported gone, but the API never removed them", r.RequestID, p)
			}
		}
	}
}
