package dispatcher

import (
	"slices"
	"time"
)

// Bounds of the memory.
const (
	// A token lives 30 minutes, so an hour covers a rejected one; the cap
	// bounds the rejected tokens under a flood of bad ones.
	rejectedTokenTTL = time.Hour
	rejectedTokenCap = 10000
	// tokensPerConference is how many header tokens are kept per
	// conference.
	tokensPerConference = 8
)

// memory is what the batcher remembers across batches, so that a batch is
// answered, or its token chosen, without asking the vendor again:
//
//   - meetings: the answer for a conference whose meeting was found gone
//     (for GoneMemory), or not ready, or whose calls the breaker held back
//     (for the delay of that hand-back);
//   - rejected: tokens the vendor refused, with when: requests published
//     before a token was replaced keep arriving with it, and each would
//     otherwise cost a call;
//   - tokens: the header tokens of each conference with requests held,
//     newest first, forgotten with the conference.
//
// It is owned by the batcher's loop goroutine and has no lock.
type memory struct {
	goneFor  time.Duration
	meetings map[string]memo
	rejected map[string]time.Time
	tokens   map[string][]string
}

// memo is a remembered answer for a whole conference.
type memo struct {
	until   time.Time
	outcome *idOutcome
}

func newMemory(goneFor time.Duration) *memory {
	return &memory{
		goneFor:  goneFor,
		meetings: make(map[string]memo),
		rejected: make(map[string]time.Time),
		tokens:   make(map[string][]string),
	}
}

// answer returns the outcome remembered for a batch of the conference at
// now, if any: for a deferral, with the delay that is left, at least a
// second.
func (m *memory) answer(conference string, now time.Time) (*idOutcome, bool) {
	mm, ok := m.meetings[conference]
	if !ok || !now.Before(mm.until) {
		return nil, false
	}
	o := *mm.outcome
	o.carriedBy = nil
	if o.kind == idDeferred {
		o.delay = max(mm.until.Sub(now), time.Second)
	}
	return &o, true
}

// remember keeps o as the answer for the conference: a deferral for its
// delay, anything else for goneFor.
func (m *memory) remember(conference string, o *idOutcome, now time.Time) {
	until := now.Add(m.goneFor)
	if o.kind == idDeferred {
		until = now.Add(o.delay)
	}
	m.meetings[conference] = memo{until: until, outcome: o}
}

// addToken puts tok first in the conference's tokens, unless the vendor
// rejected it: the newest token is tried first.
func (m *memory) addToken(conference, tok string) {
	if _, rejected := m.rejected[tok]; rejected {
		return
	}
	toks := m.tokens[conference]
	if i := slices.Index(toks, tok); i >= 0 {
		copy(toks[1:i+1], toks[:i])
		toks[0] = tok
		return
	}
	toks = append([]string{tok}, toks...)
	if len(toks) > tokensPerConference {
		toks = toks[:tokensPerConference]
	}
	m.tokens[conference] = toks
}

// tokensOf returns a copy of the conference's tokens, newest first.
func (m *memory) tokensOf(conference string) []string {
	return append([]string(nil), m.tokens[conference]...)
}

// reject forgets toks for the conference and remembers them as rejected
// at now: a rejected token does not come back to life.
func (m *memory) reject(conference string, toks []string, now time.Time) {
	for _, tok := range toks {
		ts := m.tokens[conference]
		if i := slices.Index(ts, tok); i >= 0 {
			m.tokens[conference] = slices.Delete(ts, i, i+1)
		}
		if len(m.rejected) >= rejectedTokenCap {
			clear(m.rejected)
		}
		m.rejected[tok] = now
	}
}

// forgetTokens drops the conference's tokens, once nothing waits on it.
func (m *memory) forgetTokens(conference string) {
	delete(m.tokens, conference)
}

// prune drops the answers whose time has passed and the rejected tokens
// older than rejectedTokenTTL.
func (m *memory) prune(now time.Time) {
	for id, mm := range m.meetings {
		if !now.Before(mm.until) {
			delete(m.meetings, id)
		}
	}
	for tok, at := range m.rejected {
		if now.Sub(at) > rejectedTokenTTL {
			delete(m.rejected, tok)
		}
	}
}
