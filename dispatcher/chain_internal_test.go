package dispatcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	mc "github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// scriptVendor is a fake of the hang-up API that answers its calls with
// script, in order (nil: success), and with success once the script is
// spent. Each call moves clk on by step.
type scriptVendor struct {
	mu     sync.Mutex
	script []error
	calls  [][]string // the IDs of each call
	times  []time.Time
	clk    *clock
	step   time.Duration
}

func (v *scriptVendor) HangUp(_ context.Context, _, _ string, ids []string) (mc.Response, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, append([]string(nil), ids...))
	v.times = append(v.times, time.Now())
	if v.clk != nil {
		v.clk.advance(v.step)
	}
	if len(v.script) == 0 {
		return mc.Response{Status: 200, RequestID: "ok"}, nil
	}
	err := v.script[0]
	v.script = v.script[1:]
	if err == nil {
		return mc.Response{Status: 200, RequestID: "ok"}, nil
	}
	return mc.Response{}, err
}

func (v *scriptVendor) made() [][]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([][]string(nil), v.calls...)
}

// rosterVendor is a scriptVendor that is also a Roster: online are the
// participants it lists.
type rosterVendor struct {
	*scriptVendor
	online  []string
	lookups int
}

func (v *rosterVendor) RealTimeInfo(context.Context, string, string) (*mc.MeetingInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lookups++
	info := &mc.MeetingInfo{}
	for _, id := range v.online {
		info.Participants = append(info.Participants, mc.Participant{PID: id})
	}
	return info, nil
}

func apiErr(status int, code string, class mc.Class) *mc.APIError {
	return &mc.APIError{Op: mc.OpHangUp, Status: status, Code: code, Class: class}
}

var (
	errGone        = apiErr(400, "MMC.111072008", mc.ClassParticipantGone)
	errBadParam    = apiErr(400, "MMC.111071061", mc.ClassBadParameter)
	errMeetingGone = apiErr(400, "MMC.111070005", mc.ClassMeetingGone)
	errEnding      = apiErr(400, "MMC.111072003", mc.ClassMeetingEnding)
	errNotStarted  = apiErr(400, "MMC.111072005", mc.ClassNotStarted)
	errLocked      = apiErr(400, "MMC.111072064", mc.ClassLocked)
	errServer      = apiErr(500, "", mc.ClassRetryable)
	errFlow        = apiErr(429, "", mc.ClassFlowControl)
)

func flowFor(d time.Duration) error {
	e := *errFlow
	e.RetryAfter = d
	return &e
}

func repeat(err error, n int) []error {
	s := make([]error, n)
	for i := range s {
		s[i] = err
	}
	return s
}

// chainCase: the vendor answers a batch's calls in this order → the calls
// made, and what became of each ID.
type chainCase struct {
	name      string
	ids       []string
	script    []error
	online    []string      // non-nil: the vendor is also a Roster
	clockStep time.Duration // each call moves the clock on by this
	expiresIn time.Duration // 0: the requests have no expiresAt
	cfg       Config
	// calls are the IDs of each call made; nil: just callCount of them.
	calls     [][]string
	callCount int
	// want is the outcome of each ID; reasons of the failed ones.
	want     map[string]idKind
	reasons  map[string]schemas.DeadLetterReason
	remember idKind // 0: nothing remembered for the conference
	// delay bounds the delay of deferred IDs.
	minDelay, maxDelay time.Duration
	// minGap is the least time between two calls.
	minGap time.Duration
}

func all(kind idKind, ids ...string) map[string]idKind {
	m := make(map[string]idKind, len(ids))
	for _, id := range ids {
		m[id] = kind
	}
	return m
}

func merge(ms ...map[string]idKind) map[string]idKind {
	out := map[string]idKind{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var chainCases = []chainCase{
	{
		name: "halving pins the gone ID", ids: []string{"a", "b", "c", "d"},
		script: []error{errGone, nil, errGone, nil, errGone},
		calls:  [][]string{{"a", "b", "c", "d"}, {"a", "b"}, {"c", "d"}, {"c"}, {"d"}},
		want:   merge(all(idDisconnected, "a", "b", "c"), all(idGone, "d")),
	},
	{
		name: "roster split: online in one call, each offline one alone", ids: []string{"a", "b", "c", "d", "e"},
		online: []string{"a", "b", "d", "x"},
		script: []error{errGone, nil, errGone, nil},
		calls:  [][]string{{"a", "b", "c", "d", "e"}, {"a", "b", "d"}, {"c"}, {"e"}},
		// e was not online, but only the vendor's answer makes an ID gone.
		want: merge(all(idDisconnected, "a", "b", "d", "e"), all(idGone, "c")),
	},
	{
		name: "a roster that lists everyone leaves the split to halving", ids: []string{"a", "b", "c"},
		online: []string{"a", "b", "c"},
		script: []error{errGone, nil, errGone, errGone, nil},
		calls:  [][]string{{"a", "b", "c"}, {"a"}, {"b", "c"}, {"b"}, {"c"}},
		want:   merge(all(idDisconnected, "a", "c"), all(idGone, "b")),
	},
	{
		name: "a parameter error is pinned to one ID", ids: []string{"a", "b", "c", "d"},
		online:  []string{"a"}, // never asked: only a gone participant splits by roster
		script:  []error{errBadParam, nil, errBadParam, errBadParam, nil},
		calls:   [][]string{{"a", "b", "c", "d"}, {"a", "b"}, {"c", "d"}, {"c"}, {"d"}},
		want:    merge(all(idDisconnected, "a", "b", "d"), all(idFailed, "c")),
		reasons: map[string]schemas.DeadLetterReason{"c": schemas.ReasonRejected},
	},
	{
		name: "meeting gone: failed, remembered for the conference", ids: []string{"a", "b"},
		script: []error{errMeetingGone}, callCount: 1,
		want: all(idFailed, "a", "b"), reasons: map[string]schemas.DeadLetterReason{"a": schemas.ReasonRejected, "b": schemas.ReasonRejected},
		remember: idFailed,
	},
	{
		name: "meeting ending: done", ids: []string{"a", "b"},
		script: []error{errEnding}, callCount: 1, want: all(idGone, "a", "b"),
	},
	{
		name: "not started: deferred, remembered for the delay", ids: []string{"a", "b"},
		script: []error{errNotStarted}, callCount: 1, want: all(idDeferred, "a", "b"), remember: idDeferred,
		minDelay: 4 * time.Second, maxDelay: 6 * time.Second,
	},
	{
		name: "locked: deferred twelve times as long", ids: []string{"a"},
		script: []error{errLocked}, callCount: 1, want: all(idDeferred, "a"), remember: idDeferred,
		minDelay: 48 * time.Second, maxDelay: 72 * time.Second,
	},
	{
		name: "flow control and server errors are retried", ids: []string{"a", "b"},
		script: []error{errFlow, errServer, errFlow, nil}, callCount: 4, want: all(idDisconnected, "a", "b"),
	},
	{
		name: "a short Retry-After is waited for", ids: []string{"a"},
		script: []error{flowFor(50 * time.Millisecond), nil}, callCount: 2, want: all(idDisconnected, "a"),
		minGap: 50 * time.Millisecond,
	},
	{
		name: "a long Retry-After hands back", ids: []string{"a"},
		script: []error{flowFor(45 * time.Second)}, callCount: 1, want: all(idDeferred, "a"), remember: idDeferred,
		minDelay: 45 * time.Second, maxDelay: 45 * time.Second,
	},
	{
		// Each call takes a minute of the two-minute budget.
		name: "retries exhausted", ids: []string{"a", "b"}, clockStep: time.Minute,
		script: repeat(errServer, 10), callCount: 2,
		want: all(idFailed, "a", "b"), reasons: map[string]schemas.DeadLetterReason{"a": schemas.ReasonRetriesExhausted},
	},
	{
		name: "expiry while retrying", ids: []string{"a", "b"}, clockStep: time.Minute, expiresIn: 90 * time.Second,
		cfg:    Config{RetryMaxElapsed: time.Hour},
		script: repeat(errServer, 10), callCount: 2, want: all(idExpired, "a", "b"),
	},
	{
		name: "the breaker opens: handed back until the probe", ids: []string{"a"},
		cfg:    Config{BreakerThreshold: 1},
		script: []error{errServer}, callCount: 1, want: all(idDeferred, "a"), remember: idDeferred,
		minDelay: time.Second, maxDelay: 1500 * time.Millisecond,
	},
}

func TestCallChainAnswers(t *testing.T) {
	for _, tt := range chainCases {
		t.Run(tt.name, func(t *testing.T) { runChainCase(t, tt) })
	}
}

func runChainCase(t *testing.T, tt chainCase) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	vendor := &scriptVendor{script: tt.script, clk: clk, step: tt.clockStep}
	var api HangUpper = vendor
	var roster *rosterVendor
	if tt.online != nil {
		roster = &rosterVendor{scriptVendor: vendor, online: tt.online}
		api = roster
	}
	cfg := tt.cfg
	cfg.WorkerID, cfg.Now = "w", clk.now
	cfg.RetryInitial, cfg.RetryMaxInterval = time.Millisecond, 2*time.Millisecond
	d, err := New(cfg, Deps{API: api, Publisher: nopPublisher{}})
	require.NoError(t, err)
	b := &batch{id: "w-1", conference: "c", ids: tt.ids, tokens: []string{"tok"}}
	if tt.expiresIn > 0 {
		b.expiresAt = clk.now().Add(tt.expiresIn)
	}

	out := d.batcher.caller.execute(t.Context(), b)

	calls := vendor.made()
	if tt.calls != nil {
		require.Equal(t, tt.calls, calls)
	} else {
		require.Len(t, calls, tt.callCount, "calls %v", calls)
	}
	for _, id := range tt.ids {
		o := out.outcomes[id]
		require.NotNil(t, o, "ID %s undecided", id)
		require.Equal(t, tt.want[id], o.kind, "ID %s", id)
		if r, ok := tt.reasons[id]; ok {
			require.Equal(t, r, o.reason, "ID %s", id)
		}
		if o.kind == idDeferred {
			require.GreaterOrEqual(t, o.delay, tt.minDelay)
			require.LessOrEqual(t, o.delay, tt.maxDelay)
		}
	}
	if tt.remember == 0 {
		require.Nil(t, out.remember)
	} else {
		require.NotNil(t, out.remember)
		require.Equal(t, tt.remember, out.remember.kind)
	}
	if roster != nil && len(tt.ids) > 2 && tt.script[0] == error(errGone) {
		require.Equal(t, 1, roster.lookups, "one look at the roster per batch")
	}
	for i := 1; i < len(vendor.times); i++ {
		require.GreaterOrEqual(t, vendor.times[i].Sub(vendor.times[i-1]), tt.minGap)
	}
	if tt.clockStep == 0 {
		// Every answer, whatever it was, reaches the rate limiter.
		require.Equal(t, len(calls), d.batcher.caller.limiter.answers)
	}
}

// A chain cancelled by shutdown hands its IDs back (aborted): nobody knows
// whether the vendor acted.
func TestCallChainCancelledWhileRetrying(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	vendor := &scriptVendor{script: repeat(errServer, 100)}
	d, err := New(Config{WorkerID: "w", RetryInitial: time.Hour, RetryMaxInterval: time.Hour},
		Deps{API: &cancelling{HangUpper: vendor, cancel: cancel}, Publisher: nopPublisher{}})
	require.NoError(t, err)

	out := d.batcher.caller.execute(ctx, &batch{id: "w-1", conference: "c", ids: []string{"a"}, tokens: []string{"tok"}})

	require.Len(t, vendor.made(), 1)
	require.Equal(t, idAborted, out.outcomes["a"].kind)
}

// cancelling cancels the chain's context after the call it passes on.
type cancelling struct {
	HangUpper
	cancel context.CancelFunc
}

func (c *cancelling) HangUp(ctx context.Context, conf, tok string, ids []string) (mc.Response, error) {
	defer c.cancel()
	return c.HangUpper.HangUp(ctx, conf, tok, ids)
}
