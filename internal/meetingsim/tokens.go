package meetingsim

import (
	"fmt"
	"strings"
	"time"
)

// TokenMode says what issuing a new control token does to the earlier
// tokens of the same meeting. The vendor does not document it; the worker
// must be correct either way.
type TokenMode int

const (
	// TokenModeMany keeps every token valid until it expires: a meeting
	// can have any number of live tokens.
	TokenModeMany TokenMode = iota
	// TokenModeOneLive ends every earlier token of a meeting as soon as a
	// new one is issued for it, by the token API or by IssueToken. A call
	// with an ended token is answered 401 CodeTokenInvalid, as with an
	// expired one. A keep-alive, which returns the same token, ends
	// nothing.
	TokenModeOneLive
)

// String returns "many" or "one-live".
func (m TokenMode) String() string {
	switch m {
	case TokenModeMany:
		return "many"
	case TokenModeOneLive:
		return "one-live"
	}
	return fmt.Sprintf("TokenMode(%d)", int(m))
}

func (m TokenMode) valid() bool { return m == TokenModeMany || m == TokenModeOneLive }

// MarshalText encodes m as its String.
func (m TokenMode) MarshalText() ([]byte, error) {
	if !m.valid() {
		return nil, fmt.Errorf("invalid token mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText accepts "many" or "one-live".
func (m *TokenMode) UnmarshalText(b []byte) error {
	v, err := ParseTokenMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseTokenMode parses "many" or "one-live", ignoring case.
func ParseTokenMode(s string) (TokenMode, error) {
	switch strings.ToLower(s) {
	case "many":
		return TokenModeMany, nil
	case "one-live":
		return TokenModeOneLive, nil
	}
	return 0, fmt.Errorf("token mode %q: want many or one-live", s)
}

// IssueToken issues a control token for a running meeting, as the token
// API would, without the password.
func (s *Simulator) IssueToken(conferenceID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meetings[conferenceID]
	if !ok {
		return "", fmt.Errorf("issue token for meeting %s: %w", conferenceID, ErrMeetingNotFound)
	}
	if m.state != StateRunning {
		return "", fmt.Errorf("issue token for meeting %s (%v): %w", conferenceID, m.state, ErrMeetingNotRunning)
	}
	tok, _ := s.issueTokenLocked(conferenceID, s.now())
	return tok, nil
}

// issueTokenLocked creates a token for conferenceID and returns it with its
// expiry. In TokenModeOneLive it first ends the earlier tokens of
// conferenceID. s.mu is held.
func (s *Simulator) issueTokenLocked(conferenceID string, now time.Time) (string, time.Time) {
	if len(s.tokens) >= s.tokenPruneAt {
		for tok, g := range s.tokens {
			if !now.Before(g.expires) {
				s.deleteTokenLocked(tok, g.conferenceID)
			}
		}
		s.tokenPruneAt = max(minTokenPrune, 2*len(s.tokens))
	}
	if s.tokenMode == TokenModeOneLive {
		for tok := range s.confTokens[conferenceID] {
			if now.Before(s.tokens[tok].expires) {
				s.stats.TokensReplaced++
			}
			s.deleteTokenLocked(tok, conferenceID)
		}
	}
	tok := newToken()
	exp := now.Add(s.tokenLifetime)
	s.tokens[tok] = tokenGrant{conferenceID: conferenceID, expires: exp}
	set := s.confTokens[conferenceID]
	if set == nil {
		set = map[string]struct{}{}
		s.confTokens[conferenceID] = set
	}
	set[tok] = struct{}{}
	s.stats.TokensIssued++
	return tok, exp
}

// deleteTokenLocked forgets tok, a token of conferenceID: any later call
// with it is answered as with an unknown or expired token. s.mu is held.
func (s *Simulator) deleteTokenLocked(tok, conferenceID string) {
	delete(s.tokens, tok)
	set := s.confTokens[conferenceID]
	delete(set, tok)
	if len(set) == 0 {
		delete(s.confTokens, conferenceID)
	}
}

// validTokenLocked returns the grant of a token that exists and has not
// expired at now. s.mu is held.
func (s *Simulator) validTokenLocked(tok string, now time.Time) (tokenGrant, bool) {
	if tok == "" {
		return tokenGrant{}, false
	}
	g, ok := s.tokens[tok]
	if !ok || !now.Before(g.expires) {
		return tokenGrant{}, false
	}
	return g, true
}

// ExpireTokens makes every token issued so far expire now.
func (s *Simulator) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireTokensLocked()
}

// expireTokensLocked expires every token and returns how many were valid.
// s.mu is held.
func (s *Simulator) expireTokensLocked() int {
	now := s.now()
	n := 0
	for tok, g := range s.tokens {
		if now.Before(g.expires) {
			n++
		}
		g.expires = time.Time{}
		s.tokens[tok] = g
	}
	return n
}

// SetTokenMode switches between TokenModeMany and TokenModeOneLive. It
// ends no token by itself: after a switch to TokenModeOneLive, the next new
// token of a meeting ends every earlier token of that meeting, including
// those issued before the switch. An invalid mode is an error and changes
// nothing.
func (s *Simulator) SetTokenMode(m TokenMode) error {
	if !m.valid() {
		return fmt.Errorf("set token mode: must be TokenModeMany or TokenModeOneLive, got %d", int(m))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenMode = m
	return nil
}

// TokenMode returns the current token mode.
func (s *Simulator) TokenMode() TokenMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenMode
}

// SetTokenLifetime changes how long tokens stay valid. It applies to tokens
// issued or kept alive from then on; tokens already out keep their expiry.
// A lifetime that is not positive is an error and changes nothing.
func (s *Simulator) SetTokenLifetime(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("set token lifetime: must be positive, got %v", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLifetime = d
	return nil
}

// TokenLifetime returns the lifetime given to tokens issued or kept alive
// now.
func (s *Simulator) TokenLifetime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenLifetime
}
