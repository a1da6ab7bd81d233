package schemas_test

import (
	"testing"
	"time"

	"github.com/hangup-dev/hangup/schemas"
)

// go test -run='^$' -bench=. -benchmem ./schemas/

func BenchmarkResultMarshalJSON(b *testing.B) {
	at := time.Date(2026, 11, 25, 18, 20, 0, 0, time.UTC)
	r := schemas.Result{
		RequestID: "mod-2026-11-25-000123", ConferenceID: "914083136",
		ParticipantIDs: []string{"ba9acb1e216d11eabc5165c2b91ad427", "c47f0e1a8b2d11eab0a1f5c2b91ad001"},
		Status:         schemas.StatusSucceeded, Disconnected: []string{"ba9acb1e216d11eabc5165c2b91ad427"},
		AlreadyGone: []string{"c47f0e1a8b2d11eab0a1f5c2b91ad001"}, Attempts: 3,
		BatchIDs:   []string{"worker-a-17", "worker-a-17.1", "worker-a-17.2"},
		HTTPStatus: 200, APIRequestID: "bd6c09db2be3f986c2382c01deb240e6",
		ReceivedAt: at, CompletedAt: at.Add(190 * time.Millisecond), WorkerID: "worker-a",
	}
	for b.Loop() {
		if _, err := r.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
