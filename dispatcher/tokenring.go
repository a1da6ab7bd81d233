package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hangup-dev/hangup/meetingclient"
)

// tokenRing hands out the tokens of one call chain: the header tokens
// newest first, then the TokenSource's. A header token the vendor rejects
// is passed over for the rest of the chain. The TokenSource is asked before
// every call, so that a token it renewed, or one another worker obtained,
// is used at once; a token of it that the vendor rejects is reported to it
// and replaced. Tokens expire, so that is allowed as often as a chain
// needs: the budget is per token, not per chain. Only when the source's
// tokens are refused maxRefusals times in a row, with no call accepted in
// between, does the ring give up (errTokensRefused), and the requests are
// handed back for later.
type tokenRing struct {
	conference string
	header     []string
	next       int // the header token to try next
	source     TokenSource
	current    string
	fromSource bool // current came from the source
	refusals   int  // source tokens refused in a row
	sourceErr  error
	rejected   []string
}

// maxRefusals is how many of the source's tokens in a row the vendor may
// refuse before a chain is handed back: the first may have expired, the
// next are fresh ones refused on first use.
const maxRefusals = 4

// token returns the token for the next call.
func (t *tokenRing) token(ctx context.Context) (string, error) {
	if t.next < len(t.header) {
		t.current, t.fromSource = t.header[t.next], false
		return t.current, nil
	}
	if t.source == nil {
		if len(t.header) == 0 {
			return "", ErrNoToken
		}
		return "", errTokensRejected
	}
	if t.refusals >= maxRefusals {
		return "", errTokensRefused
	}
	tok, err := t.source.Token(ctx, t.conference)
	if err == nil && tok == "" {
		err = errors.New("the token source returned an empty token")
	}
	if err != nil {
		t.sourceErr = err
		if len(t.header) == 0 {
			return "", fmt.Errorf("%w: %w", ErrNoToken, err)
		}
		return "", fmt.Errorf("%w; credentials: %w", errTokensRejected, err)
	}
	t.sourceErr = nil
	t.current, t.fromSource = tok, true
	return tok, nil
}

// accepted records that the vendor took the current token: it answered
// the call with anything but an authentication error.
func (t *tokenRing) accepted() {
	if t.fromSource {
		t.refusals = 0
	}
}

// reject records that the vendor refused the current token.
func (t *tokenRing) reject() {
	t.rejected = append(t.rejected, t.current)
	if t.fromSource {
		t.source.Invalidate(t.conference, t.current)
		t.refusals++
		return
	}
	t.next++
}

// transient reports whether the TokenSource failed for a reason that may
// pass: then the requests are handed back for later instead of failing.
func (t *tokenRing) transient() (meetingclient.Class, time.Duration, bool) {
	err := t.sourceErr
	if err == nil || errors.Is(err, ErrNoCredentials) {
		return 0, 0, false
	}
	var apiErr *meetingclient.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Class, apiErr.RetryAfter, apiErr.Class.Retryable()
	}
	return meetingclient.ClassRetryable, 0, true
}
