package credentials_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/credentials"
	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/meetingclient"
)

func Example() {
	ctx := context.Background()

	// The vendor API (simulated) and JetStream (embedded).
	sim, _ := meetingsim.New(meetingsim.Config{})
	_ = sim.AddMeeting(meetingsim.Meeting{ID: "914083136", HostPassword: "host-secret", Participants: []string{"alice"}})
	api := httptest.NewServer(sim.Handler())
	defer api.Close()
	dir, _ := os.MkdirTemp("", "credentials-example")
	defer os.RemoveAll(dir)
	srv, err := natstest.Start(natstest.Options{StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// The system that schedules meetings stores the host password.
	kv, err := credentials.EnsureBucket(ctx, js, credentials.DefaultBucket, 1)
	if err != nil {
		panic(err)
	}
	creds := credentials.Credentials{HostPassword: "host-secret"}
	value, _ := json.Marshal(creds)
	_, _ = kv.Put(ctx, "914083136", value)
	fmt.Println(creds)

	// The worker obtains tokens with it.
	client, _ := meetingclient.New(meetingclient.Config{BaseURL: api.URL})
	defer client.Close()
	store, err := credentials.New(credentials.Config{}, kv, client, zap.NewNop())
	if err != nil {
		panic(err)
	}
	tok, err := store.Token(ctx, "914083136")
	if err != nil {
		panic(err)
	}
	again, _ := store.Token(ctx, "914083136")
	fmt.Println(strings.HasPrefix(tok, "stb"), tok == again, sim.Stats().TokenRequests)

	_, err = store.Token(ctx, "555000111")
	fmt.Println(err)
	// Output:
	// Credentials{HostPassword: [REDACTED]}
	// true true 1
	// no credentials for conference 555000111 in bucket meeting_credentials
}
