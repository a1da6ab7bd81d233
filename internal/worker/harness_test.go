package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/schemas"
)

// harness is a real embedded JetStream server, the meeting API simulator
// behind a real HTTP server, and the workers under test.
type harness struct {
	t      *testing.T
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	sim    *meetingsim.Simulator
	api    *httptest.Server
	log    *zap.Logger
	sent   map[string]audit.Sent
	absent map[string]map[string]bool
	// invalid counts invalid messages published.
	invalid int
}

func newHarness(t *testing.T, simCfg meetingsim.Config) *harness {
	t.Helper()
	srv := natstest.Run(t)
	nc, js := natstest.Connect(t, srv)
	sim, err := meetingsim.New(simCfg)
	require.NoError(t, err)
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	h := &harness{
		t: t, srv: srv, nc: nc, js: js, sim: sim, api: api,
		log:    zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		sent:   map[string]audit.Sent{},
		absent: map[string]map[string]bool{},
	}
	cfg := h.config()
	cfg.SetDefaults()
	require.NoError(t, topology.Ensure(context.Background(), js, cfg.Topology))
	return h
}

// config is a worker config for tests: fast retries, no HTTP endpoint.
func (h *harness) config() Config {
	return Config{
		NATS:             natsconn.Config{URL: h.srv.ClientURL()},
		APIBaseURL:       h.api.URL,
		APITimeout:       2 * time.Second,
		Linger:           20 * time.Millisecond,
		RetryInitial:     10 * time.Millisecond,
		RetryMaxInterval: 100 * time.Millisecond,
		RetryMaxElapsed:  10 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		Provision:        true,
		WorkerID:         "test-worker",
	}
}

// start starts a worker with the test config changed by mod; it is
// stopped when the test ends.
func (h *harness) start(mod func(*Config)) *Worker {
	h.t.Helper()
	cfg := h.config()
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg, Deps{Logger: h.log})
	require.NoError(h.t, err)
	require.NoError(h.t, w.Start(context.Background()))
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// meeting adds a running meeting with participants online and returns a
// control token for it.
func (h *harness) meeting(id string, participants ...string) string {
	h.t.Helper()
	require.NoError(h.t, h.sim.AddMeeting(meetingsim.Meeting{ID: id, HostPassword: "pw-" + id, Participants: participants}))
	tok, err := h.sim.IssueToken(id)
	require.NoError(h.t, err)
	return tok
}

// participants returns n IDs "<prefix>-1".."<prefix>-n".
func participants(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	return out
}

// request publishes a valid request and remembers it for the audit.
func (h *harness) request(reqID, conf, token string, ids ...string) {
	h.t.Helper()
	h.requestWith(schemas.Request{RequestID: reqID, ConferenceID: conf, ParticipantIDs: ids}, token)
}

func (h *harness) requestWith(req schemas.Request, token string) {
	h.t.Helper()
	data, err := json.Marshal(req)
	require.NoError(h.t, err)
	msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + req.ConferenceID)
	msg.Data = data
	msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
	if token != "" {
		msg.Header.Set(schemas.TokenHeader, token)
	}
	_, err = h.js.PublishMsg(context.Background(), msg)
	require.NoError(h.t, err)
	h.sent[req.RequestID] = audit.Sent{ConferenceID: req.ConferenceID, ParticipantIDs: req.ParticipantIDs}
}

// raw publishes an invalid message.
func (h *harness) raw(subject string, data []byte, header nats.Header) {
	h.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if header != nil {
		msg.Header = header
	}
	_, err := h.js.PublishMsg(context.Background(), msg)
	require.NoError(h.t, err)
	h.invalid++
}

// neverOnline marks requested participants who are not in the meeting.
func (h *harness) neverOnline(conf string, ids ...string) {
	if h.absent[conf] == nil {
		h.absent[conf] = map[string]bool{}
	}
	for _, id := range ids {
		h.absent[conf][id] = true
	}
}

// drained waits until every request message was acked: each outcome is
// published before its ack, so the outcome streams are then complete.
func (h *harness) drained(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := h.js.Stream(context.Background(), schemas.DefaultRequestStream)
		if err == nil {
			info, err := st.Info(context.Background())
			if err == nil && info.State.Msgs == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("request stream not drained; messages left by subject: %s", h.pendingSubjects())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holder returns the partition consumer that holds the request stream's
// pending messages, and its priority group.
func (h *harness) holder() (jetstream.Consumer, string) {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, schemas.DefaultRequestStream)
	require.NoError(h.t, err)
	var name, group string
	for info := range st.ListConsumers(ctx).Info() { // read to the end: the lister's goroutine ends then
		if info.NumPending > 0 && len(info.Config.PriorityGroups) > 0 {
			name, group = info.Name, info.Config.PriorityGroups[0]
		}
	}
	require.NotEmpty(h.t, name, "no partition consumer holds a message")
	cons, err := h.js.Consumer(ctx, schemas.DefaultRequestStream, name)
	require.NoError(h.t, err)
	return cons, group
}

// pendingSubjects names the subjects of the request stream's messages,
// for the failure message of drained.
func (h *harness) pendingSubjects() string {
	st, err := h.js.Stream(context.Background(), schemas.DefaultRequestStream)
	if err != nil {
		return err.Error()
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		return err.Error()
	}
	out := fmt.Sprint(info.State.Subjects) + fmt.Sprintf(" first %d last %d", info.State.FirstSeq, info.State.LastSeq)
	for name := range st.ListConsumers(context.Background()).Info() {
		if name.NumPending+uint64(name.NumAckPending) > 0 {
			out += fmt.Sprintf("; consumer %s: %d pending, %d unacked, %d redelivered, %d waiting, delivered %+v ackfloor %+v groups %+v",
				name.Name, name.NumPending, name.NumAckPending, name.NumRedelivered, name.NumWaiting, name.Delivered, name.AckFloor, name.PriorityGroups)
		}
	}
	return out
}

// snapshot reads both outcome streams.
func (h *harness) snapshot() *audit.Snapshot {
	h.t.Helper()
	s, err := audit.Read(context.Background(), h.js, schemas.DefaultResultStream, schemas.DefaultDeadLetterStream)
	require.NoError(h.t, err)
	return s
}

// removed is who the simulator really disconnected, per conference.
func (h *harness) removed() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, d := range h.sim.Disconnects() {
		if out[d.ConferenceID] == nil {
			out[d.ConferenceID] = map[string]bool{}
		}
		out[d.ConferenceID][d.ParticipantID] = true
	}
	return out
}

// audit drains, reads the streams and checks the invariant.
func (h *harness) audit(secrets ...string) (*audit.Snapshot, *audit.Report) {
	h.t.Helper()
	h.drained(60 * time.Second)
	s := h.snapshot()
	rep := audit.Check(s, audit.Expect{
		Valid: h.sent, Invalid: h.invalid, Disconnected: h.removed(),
		NeverOnline: h.absent, Secrets: secrets,
	})
	require.Empty(h.t, rep.Violations)
	return s, rep
}

func resultsByID(s *audit.Snapshot) map[string]schemas.Result {
	out := make(map[string]schemas.Result, len(s.Results))
	for _, r := range s.Results {
		out[r.RequestID] = r
	}
	return out
}
