package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/consumer"
	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/schemas"
)

// printer is a Handler that prints what it is given and acks it at once,
// where the dispatcher would call the API and publish an outcome first.
type printer struct {
	mu   sync.Mutex
	left int           // messages still expected
	done chan struct{} // closed when none are left
}

// Capacity says how many messages the consumer may pull: here up to two
// at a time, and none once every expected message has arrived.
func (p *printer) Capacity(ctx context.Context) (int, error) {
	p.mu.Lock()
	left := p.left
	p.mu.Unlock()
	if left == 0 {
		<-ctx.Done() // Stop ends the wait
		return 0, ctx.Err()
	}
	return min(left, 2), nil
}

func (p *printer) Submit(ctx context.Context, job dispatcher.Job) error {
	r := job.Request
	fmt.Printf("submit %s: hang up %v in conference %s\n", r.RequestID, r.ParticipantIDs, r.ConferenceID)
	return p.ack(ctx, job.Msg)
}

func (p *printer) Fail(ctx context.Context, job dispatcher.Job, reason schemas.DeadLetterReason, _ string) error {
	fmt.Printf("fail %s: %s\n", job.Request.RequestID, reason)
	return p.ack(ctx, job.Msg)
}

func (p *printer) Reject(ctx context.Context, msg dispatcher.Message, dl *schemas.DeadLetter, msgID string) error {
	fmt.Printf("reject %s: %s (%s)\n", msgID, dl.Reason, dl.Error)
	return p.ack(ctx, msg)
}

func (p *printer) ack(ctx context.Context, msg dispatcher.Message) error {
	if err := msg.Ack(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left--; p.left == 0 {
		close(p.done)
	}
	return nil
}

// Example pulls two valid requests and an invalid message from a durable
// consumer and hands them to a Handler.
func Example() {
	dir, err := os.MkdirTemp("", "consumer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := provision(ctx, js); err != nil {
		fmt.Println(err)
		return
	}

	p := &printer{left: 3, done: make(chan struct{})}
	c, err := consumer.New(consumer.Config{WorkerID: "example-worker"}, consumer.Deps{JetStream: js, Handler: p})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		fmt.Println("timed out")
	}
	if err := c.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// submit req-1: hang up [p-1 p-2] in conference 914083136
	// reject invalid/DISCONNECT_REQUESTS/2: invalid_request (invalid request: participantIDs: must list at least one participant ID)
	// submit req-3: hang up [p-3] in conference 914083136
}

// provision creates the request stream and the durable pull consumer with
// the names consumer.Config defaults to, and publishes three messages.
func provision(ctx context.Context, js jetstream.JetStream) error {
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      schemas.DefaultRequestStream,
		Subjects:  []string{schemas.DefaultRequestSubjectPrefix + ".>"},
		Retention: jetstream.WorkQueuePolicy,
	})
	if err != nil {
		return err
	}
	_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   "hangup-worker",
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return err
	}
	subject := schemas.DefaultRequestSubjectPrefix + ".914083136"
	for _, data := range []string{
		`{"requestID":"req-1","conferenceID":"914083136","participantIDs":["p-1","p-2"]}`,
		`{"requestID":"req-2","conferenceID":"914083136","participantIDs":[]}`,
		`{"requestID":"req-3","conferenceID":"914083136","participantIDs":["p-3"]}`,
	} {
		if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
			return err
		}
	}
	return nil
}
