package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natsconn"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/schemas"
)

// BenchmarkPipeline measures requests per second through one worker, from
// publishing to the last ack: an embedded JetStream server with file
// storage, the simulator over loopback HTTP with no injected latency, 2,000
// requests of 1 to 3 participants over 100 conferences per iteration.
//
//	go test -run='^$' -bench=Pipeline -benchtime=3x -count=3 ./internal/worker/
func BenchmarkPipeline(b *testing.B) {
	const requests, confs = 2000, 100
	srv := natstest.Run(b)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	sim, err := meetingsim.New(meetingsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	defer api.Close()
	tokens := make([]string, confs)
	for c := range tokens {
		id := fmt.Sprintf("c%d", c)
		if err := sim.AddMeeting(meetingsim.Meeting{ID: id, HostPassword: "pw"}); err != nil {
			b.Fatal(err)
		}
		if tokens[c], err = sim.IssueToken(id); err != nil {
			b.Fatal(err)
		}
	}
	w, err := New(Config{NATS: natsconn.Config{URL: srv.ClientURL()}, APIBaseURL: api.URL, Provision: true, WorkerID: "bench"}, Deps{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()
	stream, err := js.Stream(context.Background(), schemas.DefaultResultStream)
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for r := 0; r < requests; r++ {
			c := r % confs
			ids := []string{fmt.Sprintf("i%d-r%d-a", i, r)}
			for k := 0; k < r%3; k++ {
				ids = append(ids, fmt.Sprintf("i%d-r%d-%d", i, r, k))
			}
			data, _ := json.Marshal(schemas.Request{RequestID: fmt.Sprintf("i%d-r%d", i, r), ConferenceID: fmt.Sprintf("c%d", c), ParticipantIDs: ids})
			msg := nats.NewMsg(fmt.Sprintf("%s.c%d", schemas.DefaultRequestSubjectPrefix, c))
			msg.Data = data
			msg.Header.Set(schemas.TokenHeader, tokens[c])
			if _, err := js.PublishMsgAsync(msg); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		want := uint64((i + 1) * requests)
		for {
			info, err := stream.Info(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if info.State.Msgs >= want {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling a counter, not waiting for an event
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*requests)/time.Since(start).Seconds(), "requests/s")
	calls := sim.Stats().Calls
	b.ReportMetric(float64(b.N*requests)/float64(max(calls, 1)), "requests/call")
}
