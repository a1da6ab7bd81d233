package dispatcher

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mc "github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// go test -run='^$' -bench=Dispatcher -benchmem ./dispatcher/

// countMsg is a Message that counts its acks.
type countMsg struct{ acks *sync.WaitGroup }

func (m countMsg) InProgress() error                { return nil }
func (m countMsg) Ack() error                       { m.acks.Done(); return nil }
func (m countMsg) NakWithDelay(time.Duration) error { m.acks.Done(); return nil }

// instantVendor answers every call at once with success.
type instantVendor struct{ calls atomic.Int64 }

func (v *instantVendor) HangUp(context.Context, string, string, []string) (mc.Response, error) {
	v.calls.Add(1)
	return mc.Response{Status: 200, RequestID: "ok"}, nil
}

// nullPublisher stores nothing: the benchmark measures the dispatcher.
type nullPublisher struct{}

func (nullPublisher) PublishResult(context.Context, *schemas.Result) (*schemas.Result, error) {
	return nil, nil
}
func (nullPublisher) PublishDeadLetter(context.Context, *schemas.DeadLetter, string) error {
	return nil
}

// BenchmarkDispatcher measures the work of the dispatcher per request:
// batching by conference, the call chain, deciding the outcome and
// settling the message, with a vendor that answers at once. Requests of 2
// IDs are spread over 100 conferences; b.N requests per run.
func BenchmarkDispatcher(b *testing.B) {
	vendor := &instantVendor{}
	d, err := New(Config{WorkerID: "bench", Linger: time.Millisecond, MaxInFlight: 4000},
		Deps{API: vendor, Publisher: nullPublisher{}})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = d.Stop(context.Background()) }()
	jobs := make([]Job, 10000)
	var acks sync.WaitGroup
	for i := range jobs {
		conf := "conf" + strconv.Itoa(i%100)
		jobs[i] = Job{
			Request: &schemas.Request{RequestID: "r" + strconv.Itoa(i), ConferenceID: conf,
				ParticipantIDs: []string{"p" + strconv.Itoa(2*i), "p" + strconv.Itoa(2*i+1)}},
			Token: "token",
			Msg:   countMsg{acks: &acks},
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		acks.Add(1)
		if err := d.Submit(b.Context(), jobs[i%len(jobs)]); err != nil {
			b.Fatal(err)
		}
	}
	acks.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(vendor.calls.Load()), "requests/call")
}
