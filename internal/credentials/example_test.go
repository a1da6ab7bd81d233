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
	"github.com/hangup-dev/hangup/internal/embedded"
	"github.com/hangup-dev/hangup/internal/meetingsim"
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
	srv, err := embedded.Start(embedded.Options{StoreDir: dir})
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

	// Two workers obtain tokens with it, and share them through the token
	// cache bucket.
	tokens, err := credentials.EnsureTokenBucket(ctx, js, credentials.DefaultTokenBucket, 1)
	if err != nil {
		panic(err)
	}
	client, _ := meetingclient.New(meetingclient.Config{BaseURL: api.URL})
	defer client.Close()
	deps := credentials.Deps{Credentials: kv, Tokens: tokens, JetStream: js, API: client, Logger: zap.NewNop()}
	store, err := credentials.New(credentials.Config{Holder: "worker-1"}, deps)
	if err != nil {
		panic(err)
	}
	other, _ := credentials.New(credentials.Config{Holder: "worker-2"}, deps)
	tok, err := store.Token(ctx, "914083136")
	if err != nil {
		panic(err)
	}
	again, _ := store.Token(ctx, "914083136")
	theirs, _ := other.Token(ctx, "914083136")
	fmt.Println(strings.HasPrefix(tok, "stb"), tok == again, tok == theirs, sim.Stats().TokenRequests)

	_, err = store.Token(ctx, "555000111")
	fmt.Println(err)
	// Output:
	// Credentials{HostPassword: [redacted]}
	// true true true 1
	// no credentials for conference 555000111 in bucket meeting_credentials
}
