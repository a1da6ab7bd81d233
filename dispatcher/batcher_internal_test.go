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

// fakeMsg is a Message that records how it was settled.
type fakeMsg struct {
	mu       sync.Mutex
	acked    bool
	nakDelay time.Duration
	settled  chan struct{} // closed by the ack or the hand-back
}

func newFakeMsg() *fakeMsg { return &fakeMsg{settled: make(chan struct{})} }

func (m *fakeMsg) InProgress() error { return nil }

func (m *fakeMsg) Ack() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acked = true
	close(m.settled)
	return nil
}

func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nakDelay = d
	close(m.settled)
	return nil
}

// recPublisher is a Publisher that keeps the results.
type recPublisher struct {
	mu      sync.Mutex
	results map[string]*schemas.Result
}

func (p *recPublisher) PublishResult(_ context.Context, r *schemas.Result) (*schemas.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.results[r.RequestID] = r
	return nil, nil
}

func (p *recPublisher) PublishDeadLetter(context.Context, *schemas.DeadLetter, string) error {
	return nil
}

// batcherEnv runs a Dispatcher on fakes: a scripted vendor, a fake clock,
// and a batch of one ID sent as soon as it arrives.
type batcherEnv struct {
	t      *testing.T
	clk    *clock
	vendor *scriptVendor
	pub    *recPublisher
	d      *Dispatcher
}

func newBatcherEnv(t *testing.T, script ...error) *batcherEnv {
	e := &batcherEnv{t: t, clk: &clock{t: time.Unix(1_700_000_000, 0)}, pub: &recPublisher{results: map[string]*schemas.Result{}}}
	e.vendor = &scriptVendor{script: script}
	d, err := New(Config{WorkerID: "w", MaxBatch: 1, Now: e.clk.now}, Deps{API: e.vendor, Publisher: e.pub})
	require.NoError(t, err)
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, d.Stop(context.Background())) })
	e.d = d
	return e
}

// submit hands over a request for one participant and waits until its
// message is acked or handed back.
func (e *batcherEnv) submit(requestID, token string, expiresAt *time.Time) *fakeMsg {
	e.t.Helper()
	msg := newFakeMsg()
	req := &schemas.Request{RequestID: requestID, ConferenceID: "c", ParticipantIDs: []string{"p-" + requestID}, ExpiresAt: expiresAt}
	require.NoError(e.t, e.d.Submit(e.t.Context(), Job{Request: req, Token: token, Msg: msg}))
	select {
	case <-msg.settled:
	case <-time.After(10 * time.Second):
		e.t.Fatalf("request %s not settled", requestID)
	}
	return msg
}

func (e *batcherEnv) result(requestID string) *schemas.Result {
	e.pub.mu.Lock()
	defer e.pub.mu.Unlock()
	return e.pub.results[requestID]
}

func TestBatcherAnswersAGoneMeetingFromMemory(t *testing.T) {
	e := newBatcherEnv(t, errMeetingGone)
	require.True(t, e.submit("r1", "tok", nil).acked)
	require.Equal(t, schemas.StatusFailed, e.result("r1").Status)

	require.True(t, e.submit("r2", "tok", nil).acked)
	require.Len(t, e.vendor.made(), 1, "the next batch is decided without a call")
	r2 := e.result("r2")
	require.Equal(t, schemas.StatusFailed, r2.Status)
	require.Equal(t, "MMC.111070005", r2.ErrorCode, "with the answer that decided it")
	require.Empty(t, r2.BatchIDs, "no call carried it")

	e.clk.advance(30 * time.Second) // GoneMemory
	require.True(t, e.submit("r3", "tok", nil).acked)
	require.Len(t, e.vendor.made(), 2)
	require.Equal(t, schemas.StatusSucceeded, e.result("r3").Status)
}

func TestBatcherHandsBackANotReadyMeetingForTheRestOfItsDelay(t *testing.T) {
	e := newBatcherEnv(t, errNotStarted)
	delay := e.submit("r1", "tok", nil).nakDelay
	require.InDelta(t, 5*time.Second, delay, float64(time.Second), "DeferInitial, with jitter")
	require.Nil(t, e.result("r1"), "a request handed back has no outcome yet")

	require.Equal(t, delay, e.submit("r2", "tok", nil).nakDelay)
	e.clk.advance(2 * time.Second)
	require.Equal(t, delay-2*time.Second, e.submit("r3", "tok", nil).nakDelay)
	require.Len(t, e.vendor.made(), 1, "remembered for the delay: no calls")

	e.clk.advance(delay)
	require.True(t, e.submit("r4", "tok", nil).acked)
	require.Len(t, e.vendor.made(), 2)
}

func TestBatcherRejectedTokenCostsNoFurtherCall(t *testing.T) {
	e := newBatcherEnv(t, apiErr(401, "USG.000000004", mc.ClassAuthExpired))
	require.True(t, e.submit("r1", "stale", nil).acked)
	require.Equal(t, schemas.StatusFailed, e.result("r1").Status)
	require.Len(t, e.vendor.made(), 1)

	require.True(t, e.submit("r2", "stale", nil).acked)
	require.Equal(t, schemas.StatusFailed, e.result("r2").Status)
	require.Len(t, e.vendor.made(), 1, "a token once rejected is not sent again")
}

func TestBatcherExpiredRequestMakesNoCall(t *testing.T) {
	e := newBatcherEnv(t)
	past := e.clk.now().Add(-time.Second)
	require.True(t, e.submit("r1", "tok", &past).acked)
	require.Equal(t, schemas.StatusExpired, e.result("r1").Status)
	require.Empty(t, e.vendor.made())
}
