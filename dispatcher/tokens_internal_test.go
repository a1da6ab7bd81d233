package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// tokenVendor is a fake of the hang-up API for the token logic: it accepts
// only the tokens it holds as valid, ends the valid ones after every
// expireEvery accepted calls (a token's life, counted in calls), and, like
// a strict vendor, rejects a call of several IDs when one of them is
// "gone-…", so that batches are split into chains of calls.
type tokenVendor struct {
	mu          sync.Mutex
	valid       map[string]bool
	expireEvery int // 0: tokens never expire
	accepted    int
	calls       []string // the token of each call
}

func (v *tokenVendor) HangUp(_ context.Context, _, token string, ids []string) (meetingclient.Response, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, token)
	if !v.valid[token] {
		return meetingclient.Response{}, &meetingclient.APIError{Op: meetingclient.OpHangUp, Status: 401, Code: "USG.000000004", Class: meetingclient.ClassAuthExpired}
	}
	v.accepted++
	if v.expireEvery > 0 && v.accepted%v.expireEvery == 0 {
		clear(v.valid)
	}
	if len(ids) > 1 && slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(id, "gone-") }) {
		return meetingclient.Response{}, &meetingclient.APIError{Op: meetingclient.OpHangUp, Status: 400, Code: "MMC.111072008", Class: meetingclient.ClassParticipantGone}
	}
	if len(ids) == 1 && strings.HasPrefix(ids[0], "gone-") {
		return meetingclient.Response{}, &meetingclient.APIError{Op: meetingclient.OpHangUp, Status: 400, Code: "MMC.111072008", Class: meetingclient.ClassParticipantGone}
	}
	return meetingclient.Response{Status: 200}, nil
}

// tokenSupply is a fake TokenSource: it hands out "src-1", "src-2", ...,
// a new one after each Invalidate of the current one, and makes each new
// token valid at the vendor unless refuseFresh is set.
type tokenSupply struct {
	mu          sync.Mutex
	vendor      *tokenVendor
	n           int
	current     string
	refuseFresh bool
	err         error
	invalidated []string
}

func (s *tokenSupply) Token(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	if s.current == "" {
		s.n++
		s.current = fmt.Sprintf("src-%d", s.n)
		if !s.refuseFresh {
			s.vendor.mu.Lock()
			s.vendor.valid[s.current] = true
			s.vendor.mu.Unlock()
		}
	}
	return s.current, nil
}

func (s *tokenSupply) Invalidate(_, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, token)
	if token == s.current {
		s.current = ""
	}
}

type nopPublisher struct{}

func (nopPublisher) PublishResult(context.Context, *schemas.Result) (*schemas.Result, error) {
	return nil, nil
}

func (nopPublisher) PublishDeadLetter(context.Context, *schemas.DeadLetter, string) error {
	return nil
}

// tokenCase: what the vendor does with tokens → the calls made, the tokens
// reported rejected, and what became of each ID. No NATS, no HTTP: the
// call chain of one batch against fakes.
type tokenCase struct {
	name        string
	header      []string // tokens from the requests, newest first
	valid       []string // header tokens the vendor accepts
	expireEvery int
	refuseFresh bool
	noSource    bool
	sourceErr   error
	ids         []string

	wantKind        idKind
	wantReason      schemas.DeadLetterReason
	wantCalls       int // -1: any
	wantInvalidated int // -1: any
	wantRemember    bool
}

var (
	tokenChainIDs = []string{"a", "gone-1", "b", "gone-2", "c", "gone-3", "d", "gone-4"}
	// tokenChain is how many calls the split of tokenChainIDs takes:
	// halving pins the four gone IDs in 1 + 2 + 4 + 8 calls.
	tokenChain = 15
)

var tokenCases = []tokenCase{
	{
		name: "source token, no expiry", ids: tokenChainIDs,
		wantKind: idDisconnected, wantCalls: tokenChain, wantInvalidated: 0,
	},
	{
		// A token's life is three calls: the chain gets a new token
		// whenever one expires, at the cost of one refused call each.
		name: "tokens expire again and again within one chain", ids: tokenChainIDs, expireEvery: 3,
		wantKind: idDisconnected, wantCalls: tokenChain + (tokenChain-1)/3, wantInvalidated: (tokenChain - 1) / 3,
	},
	{
		name: "every call expires its token", ids: tokenChainIDs, expireEvery: 1,
		wantKind: idDisconnected, wantCalls: 2*tokenChain - 1, wantInvalidated: tokenChain - 1,
	},
	{
		name: "fresh tokens refused on first use are bounded, then handed back", ids: []string{"a"}, refuseFresh: true,
		wantKind: idDeferred, wantCalls: maxRefusals, wantInvalidated: maxRefusals, wantRemember: true,
	},
	{
		name: "header token first", header: []string{"hdr"}, valid: []string{"hdr"}, ids: []string{"a", "b"},
		wantKind: idDisconnected, wantCalls: 1, wantInvalidated: 0,
	},
	{
		name: "rejected header tokens fall back to the source", header: []string{"hdr-2", "hdr-1"}, ids: []string{"a", "b"},
		wantKind: idDisconnected, wantCalls: 3, wantInvalidated: 0,
	},
	{
		name: "rejected header tokens and no source fail", header: []string{"hdr-2", "hdr-1"}, noSource: true, ids: []string{"a"},
		wantKind: idFailed, wantReason: schemas.ReasonRejected, wantCalls: 2, wantInvalidated: 0,
	},
	{
		name: "a header token that expires mid-chain is followed by the source", header: []string{"hdr"}, valid: []string{"hdr"}, expireEvery: 2, ids: tokenChainIDs,
		wantKind: idDisconnected, wantCalls: -1, wantInvalidated: -1,
	},
	{
		name: "no credentials fails without a call", sourceErr: fmt.Errorf("%w for conference c", ErrNoCredentials), ids: []string{"a"},
		wantKind: idFailed, wantReason: schemas.ReasonRejected, wantCalls: 0, wantInvalidated: 0,
	},
	{
		name: "credentials store unreachable hands back", sourceErr: errors.New("bucket unreachable"), ids: []string{"a"},
		wantKind: idDeferred, wantCalls: 0, wantInvalidated: 0, wantRemember: true,
	},
	{
		name: "the token API says the meeting is gone", ids: []string{"a"},
		sourceErr: &meetingclient.APIError{Op: meetingclient.OpCreateToken, Status: 400, Code: "MMC.111070005", Class: meetingclient.ClassMeetingGone},
		wantKind:  idFailed, wantReason: schemas.ReasonRejected, wantCalls: 0, wantInvalidated: 0, wantRemember: true,
	},
}

func TestCallChainTokens(t *testing.T) {
	for _, tt := range tokenCases {
		t.Run(tt.name, func(t *testing.T) { runTokenCase(t, tt) })
	}
}

func runTokenCase(t *testing.T, tt tokenCase) {
	vendor := &tokenVendor{valid: map[string]bool{}, expireEvery: tt.expireEvery}
	for _, tok := range tt.valid {
		vendor.valid[tok] = true
	}
	supply := &tokenSupply{vendor: vendor, refuseFresh: tt.refuseFresh, err: tt.sourceErr}
	deps := Deps{API: vendor, Publisher: nopPublisher{}, Tokens: supply}
	if tt.noSource {
		deps.Tokens = nil
	}
	d, err := New(Config{WorkerID: "w"}, deps)
	require.NoError(t, err)
	b := &batch{id: "w-1", conference: "c", ids: tt.ids, tokens: tt.header}

	out := d.batcher.caller.execute(t.Context(), b)

	for _, id := range tt.ids {
		o := out.outcomes[id]
		require.NotNil(t, o, "ID %s undecided", id)
		want := tt.wantKind
		if want == idDisconnected && strings.HasPrefix(id, "gone-") {
			want = idGone
		}
		require.Equal(t, want, o.kind, "ID %s", id)
		if want == idFailed {
			require.Equal(t, tt.wantReason, o.reason)
		}
	}
	if tt.wantCalls >= 0 {
		require.Len(t, vendor.calls, tt.wantCalls, "calls with tokens %v", vendor.calls)
	}
	if tt.wantInvalidated >= 0 {
		require.Len(t, supply.invalidated, tt.wantInvalidated)
	}
	for _, tok := range supply.invalidated {
		require.Contains(t, out.rejected, tok, "a source token refused is reported")
	}
	require.Equal(t, tt.wantRemember, out.remember != nil, "remembered for the conference")
}
