package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/internal/topology"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/outcome"
	"github.com/hangup-dev/hangup/schemas"
)

// message is the source message of a job, a dispatcher.Message. The
// consumer hands over a jetstream.Msg; this one only says when it is acked.
type message struct{ acked chan struct{} }

func (m *message) InProgress() error                { return nil }
func (m *message) NakWithDelay(time.Duration) error { return nil }
func (m *message) Ack() error                       { close(m.acked); return nil }

func Example() {
	ctx := context.Background()

	// A stand-in for the vendor's API, which disconnects whoever it is asked to.
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/mmc/control/conferences/participants/delete" ||
			r.URL.Query().Get("conferenceID") != "914083136" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Request-Id", "bd6c09db2be3f986c2382c01deb240e6")
		w.WriteHeader(http.StatusOK)
	}))
	defer vendor.Close()
	client, err := meetingclient.New(meetingclient.Config{BaseURL: vendor.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	// Outcomes go to JetStream: here an embedded server with the streams.
	js, stop, err := startJetStream(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	pub, err := outcome.NewPublisher(outcome.Config{}, js)
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := dispatcher.New(dispatcher.Config{WorkerID: "worker-1"}, dispatcher.Deps{API: client, Publisher: pub})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	msg := &message{acked: make(chan struct{})}
	err = d.Submit(ctx, dispatcher.Job{
		Request: &schemas.Request{RequestID: "r-1", ConferenceID: "914083136", ParticipantIDs: []string{"p-1", "p-2"}},
		Token:   "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb",
		Msg:     msg,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-msg.acked // once its result is published
	if err := d.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}

	res, err := lastResult(ctx, js, "914083136")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Disconnected, res.BatchIDs, res.HTTPStatus, res.APIRequestID)
	// Output: succeeded [p-1 p-2] [worker-1-1] 200 bd6c09db2be3f986c2382c01deb240e6
}

// startJetStream starts an embedded JetStream server with the streams of
// the event contract, and connects to it in process.
func startJetStream(ctx context.Context) (jetstream.JetStream, func(), error) {
	dir, err := os.MkdirTemp("", "dispatcher-example")
	if err != nil {
		return nil, nil, err
	}
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, InProcessOnly: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	stop := func() {
		if nc != nil {
			nc.Close()
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var topo topology.Config
		topo.SetDefaults()
		err = topology.Ensure(ctx, js, topo)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return js, stop, nil
}

// lastResult reads the latest result of a conference from the results
// stream.
func lastResult(ctx context.Context, js jetstream.JetStream, conferenceID string) (*schemas.Result, error) {
	stream, err := js.Stream(ctx, schemas.DefaultResultStream)
	if err != nil {
		return nil, err
	}
	m, err := stream.GetLastMsgForSubject(ctx, schemas.DefaultResultSubjectPrefix+"."+conferenceID)
	if err != nil {
		return nil, err
	}
	var res schemas.Result
	return &res, json.Unmarshal(m.Data, &res)
}
