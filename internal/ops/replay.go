package ops

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/hangup-dev/hangup/schemas"
)

// ReplayOptions says which dead letters to replay and how.
type ReplayOptions struct {
	// Sequences names dead letters by their sequence in the dead-letter
	// stream; when empty, Filter selects them.
	Sequences []uint64
	// Filter selects the dead letters when Sequences is empty.
	Filter Filter
	// DryRun only reports what would be replayed.
	DryRun bool
	// Yes replays without asking.
	Yes bool
	// Again replays dead letters whose request was replayed before.
	Again bool
	// Token goes in the X-Conference-Authorization header of each replay.
	// Optional: dead letters keep no token, and without one the workers
	// use the conference's stored credentials.
	Token string
	// ExpiresIn gives each replay the expiresAt now + ExpiresIn. Zero
	// keeps the original's; a request whose expiresAt has passed is then
	// not replayed.
	ExpiresIn time.Duration
	// Confirm is read for the answer to "replay N dead letters? [y/N]",
	// which is written to Prompt. Needed unless Yes or DryRun.
	Confirm io.Reader
	Prompt  io.Writer
}

func (o *ReplayOptions) validate() error {
	var errs []error
	if len(o.Sequences) > 0 && o.Filter != (Filter{}) {
		errs = append(errs, errors.New("name dead letters by sequence or select them with filters, not both"))
	}
	if err := o.Filter.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.ExpiresIn < 0 {
		errs = append(errs, fmt.Errorf("ExpiresIn: must not be negative, got %s", o.ExpiresIn))
	}
	if !o.Yes && !o.DryRun && (o.Confirm == nil || o.Prompt == nil) {
		errs = append(errs, errors.New("Confirm and Prompt: needed to ask before replaying"))
	}
	return errors.Join(errs...)
}

// ErrNotConfirmed is returned when the operator did not answer yes.
var ErrNotConfirmed = errors.New("replay not confirmed; nothing replayed")

// replayItem is what Replay reports about one dead letter.
type replayItem struct {
	Sequence     uint64 `json:"sequence"`
	RequestID    string `json:"requestID,omitempty"`
	ConferenceID string `json:"conferenceID,omitempty"`
	// Action is "replay" (planned), "skip", "replayed" or "failed".
	Action string `json:"action"`
	// ReplayedAs is the new request ID (planned, or published).
	ReplayedAs string `json:"replayedAs,omitempty"`
	// Stream and StreamSequence are where the new request was stored.
	Stream         string `json:"stream,omitempty"`
	StreamSequence uint64 `json:"streamSequence,omitempty"`
	// Why says why it is skipped or failed.
	Why string `json:"why,omitempty"`
}

func (it replayItem) text() string {
	head := fmt.Sprintf("#%d %s (conference %s)", it.Sequence, orDash(it.RequestID), orDash(it.ConferenceID))
	switch it.Action {
	case "replay":
		return fmt.Sprintf("%s: replay as %s", head, it.ReplayedAs)
	case "replayed":
		return fmt.Sprintf("%s: replayed as %s (stream %s, sequence %d)", head, it.ReplayedAs, it.Stream, it.StreamSequence)
	case "skip":
		return fmt.Sprintf("%s: skipped: %s", head, it.Why)
	}
	return fmt.Sprintf("%s: failed: %s", head, it.Why)
}

// plan is one dead letter chosen for replay.
type plan struct {
	entry *Entry
	item  replayItem
}

// Replay publishes dead-lettered requests again as new requests: each
// with a new request ID (<original>.r<n> for its n-th replay, or a fresh
// ID where that would pass the 128 characters of a request ID) and
// replayOf set to the original ID, since the result stream keeps the
// first result of a request ID. Each replay is recorded in the replay
// bucket before it is published, by a compare-and-set write, so that of
// two operators replaying one request at once only one publishes; the
// record is taken back if the publish fails.
//
// It first reports the plan: what it will replay and what it skips, and
// why (the dead letter's message is not a valid request, it was replayed
// before and Again is not set, its expiresAt has passed). With DryRun it
// stops there; otherwise it asks, unless Yes. A dead letter named in
// Sequences that is skipped or fails makes Replay return an error; one a
// Filter selected only when it fails.
func (d *DeadLetters) Replay(ctx context.Context, opts ReplayOptions, out Output) error {
	if err := opts.validate(); err != nil {
		return err
	}
	entries, err := d.selectEntries(ctx, opts)
	if err != nil {
		return err
	}
	now := d.cfg.Now()
	var plans []plan
	var refused int
	seen := map[string]uint64{}
	for _, e := range entries {
		it := replayItem{Sequence: e.Sequence, Action: "replay"}
		if e.DeadLetter != nil {
			it.RequestID, it.ConferenceID = e.DeadLetter.RequestID, e.DeadLetter.ConferenceID
		}
		if why := d.refusal(e, opts, seen, now); why != "" {
			it.Action, it.Why = "skip", why
			refused++
		} else {
			seen[e.Request.RequestID] = e.Sequence
			it.ReplayedAs = replayID(e.Request.RequestID, 1+replayCount(e.Replays))
			plans = append(plans, plan{entry: e, item: it})
		}
		if err := out.emit(it, it.text()); err != nil {
			return err
		}
	}
	var refusedErr error
	if len(opts.Sequences) > 0 && refused > 0 {
		refusedErr = fmt.Errorf("%d of the %d dead letters named were not replayed", refused, len(entries))
	}
	switch {
	case len(plans) == 0:
		if err := out.note("nothing to replay"); err != nil {
			return err
		}
		return refusedErr
	case opts.DryRun:
		if err := out.note("dry run: %d dead letters would be replayed; nothing published", len(plans)); err != nil {
			return err
		}
		return refusedErr
	}
	if !opts.Yes {
		if err := confirm(opts, len(plans)); err != nil {
			return err
		}
	}
	if opts.Token == "" {
		if err := out.note("no token given: the workers use each conference's stored credentials"); err != nil {
			return err
		}
	}
	kv, err := EnsureReplayBucket(ctx, d.js, d.cfg.ReplayBucket, d.cfg.Replicas, d.cfg.MaxAge)
	if err != nil {
		return err
	}
	log := &replayLog{kv: kv}
	var errs []error
	for _, p := range plans {
		it := p.item
		pub, err := d.replayOne(ctx, log, p.entry, opts)
		if err != nil {
			it.Action, it.Why, it.ReplayedAs = "failed", err.Error(), ""
			errs = append(errs, fmt.Errorf("dead letter %d: %w", p.entry.Sequence, err))
		} else {
			it.Action, it.ReplayedAs, it.Stream, it.StreamSequence = "replayed", pub.RequestID, pub.Stream, pub.Sequence
		}
		if err := out.emit(it, it.text()); err != nil {
			return err
		}
	}
	return errors.Join(append(errs, refusedErr)...)
}

// selectEntries returns the dead letters named or selected.
func (d *DeadLetters) selectEntries(ctx context.Context, opts ReplayOptions) ([]*Entry, error) {
	if len(opts.Sequences) == 0 {
		return d.List(ctx, opts.Filter)
	}
	var entries []*Entry
	for _, seq := range slices.Compact(slices.Sorted(slices.Values(opts.Sequences))) {
		e, err := d.Get(ctx, seq)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// refusal says why e is not replayed, or "".
func (d *DeadLetters) refusal(e *Entry, opts ReplayOptions, seen map[string]uint64, now time.Time) string {
	switch req := e.Request; {
	case req == nil:
		return "cannot be replayed: " + e.NotReplayable
	case seen[req.RequestID] != 0:
		return fmt.Sprintf("the same request as dead letter #%d, replayed once for both", seen[req.RequestID])
	case e.Replays != nil && !opts.Again:
		last := e.Replays.Last()
		return fmt.Sprintf("already replayed as %s at %s; --again replays it once more", last.RequestID, last.At.UTC().Format(time.RFC3339))
	case req.ExpiresAt != nil && !req.ExpiresAt.After(now) && opts.ExpiresIn == 0:
		return fmt.Sprintf("its expiresAt %s has passed, so a worker would only report it expired; --expires-in gives it a new one",
			req.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return ""
}

func replayCount(r *ReplayRecord) int {
	if r == nil {
		return 0
	}
	return len(r.Replays)
}

// replayID is the request ID of the n-th replay of original:
// <original>.r<n>, or a fresh ID when that is longer than a request ID
// may be.
func replayID(original string, n int) string {
	if id := fmt.Sprintf("%s.r%d", original, n); len(id) <= schemas.MaxRequestIDLen {
		return id
	}
	return "replay-" + nuid.Next()
}

// confirm asks whether to replay n dead letters.
func confirm(opts ReplayOptions, n int) error {
	if _, err := fmt.Fprintf(opts.Prompt, "replay %d dead letters? [y/N] ", n); err != nil {
		return err
	}
	answer, err := bufio.NewReader(opts.Confirm).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return ErrNotConfirmed
}

// replayOne records and publishes the replay of e's request.
func (d *DeadLetters) replayOne(ctx context.Context, log *replayLog, e *Entry, opts ReplayOptions) (Published, error) {
	orig := e.Request
	rec, rev, err := log.get(ctx, orig.RequestID)
	if err != nil {
		return Published{}, err
	}
	if rec != nil && !opts.Again {
		return Published{}, fmt.Errorf("replayed meanwhile as %s; --again replays it once more", rec.Last().RequestID)
	}
	now := d.cfg.Now().UTC()
	next := *orig
	next.RequestID = replayID(orig.RequestID, 1+replayCount(rec))
	next.ReplayOf = orig.RequestID
	if opts.ExpiresIn > 0 {
		at := now.Add(opts.ExpiresIn)
		next.ExpiresAt = &at
	}
	draft, err := NewDraft(next, PublishConfig{SubjectPrefix: d.cfg.RequestSubjectPrefix, MaxParticipants: d.cfg.MaxParticipants})
	if err != nil {
		return Published{}, fmt.Errorf("replay of %s: %w", orig.RequestID, err)
	}
	updated := &ReplayRecord{RequestID: orig.RequestID}
	if rec != nil {
		updated.Replays = slices.Clone(rec.Replays)
	}
	updated.Replays = append(updated.Replays, Replay{RequestID: next.RequestID, At: now, DeadLetterSequence: e.Sequence})
	newRev, err := log.put(ctx, updated, rev)
	if err != nil {
		return Published{}, err
	}
	pub, err := publishDraft(ctx, d.js, draft, opts.Token)
	if err == nil && pub.Duplicate {
		err = fmt.Errorf("the request ID %s is in %s already (within its duplicate window), so the stream dropped the replay", next.RequestID, pub.Stream)
	}
	if err != nil {
		return Published{}, errors.Join(err, log.undo(ctx, orig.RequestID, rec, newRev))
	}
	return pub, nil
}
