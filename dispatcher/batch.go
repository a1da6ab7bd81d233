package dispatcher

import "time"

// batch is one group of participant IDs of one conference sent together,
// with the requests waiting for each ID.
type batch struct {
	id         string
	conference string
	ids        []string
	waiters    map[string][]*request
	tokens     []string // newest first
	// expiresAt is the latest expiresAt of the requests waiting; zero when
	// one of them has none. After it, nobody wants the call any more.
	expiresAt time.Time
	// deliveries is the highest delivery count among the messages waiting.
	deliveries uint64
}

// batchOutcome is what the call chain of a batch decided.
type batchOutcome struct {
	batch    *batch
	outcomes map[string]*idOutcome
	rejected []string // tokens the vendor rejected
	// remember is set when the answer holds for the whole conference for
	// a while: the meeting is gone, or not ready yet.
	remember *idOutcome
}

// expired reports whether every request waiting for b has passed its
// expiresAt.
func (b *batch) expired(now time.Time) bool {
	return !b.expiresAt.IsZero() && !now.Before(b.expiresAt)
}
