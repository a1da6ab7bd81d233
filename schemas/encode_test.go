package schemas_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hangup-dev/hangup/schemas"
)

// reflected encodes r the way encoding/json does for its fields, with
// nil lists as empty arrays: what Result.MarshalJSON must write.
func reflected(t testing.TB, r schemas.Result) []byte {
	type plain schemas.Result
	p := plain(r)
	for _, list := range []*[]string{&p.ParticipantIDs, &p.Disconnected, &p.AlreadyGone, &p.FailedParticipantIDs, &p.BatchIDs} {
		if *list == nil {
			*list = []string{}
		}
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return data
}

// awkward holds what a JSON string encoder must escape or replace.
var awkward = []string{
	"", "plain", `quote"`, `back\slash`, "<script>&</script>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"caf\u00e9 \u4e16\u754c", "line\u2028para\u2029", "bad\xffutf8\xc3", "emoji \U0001F600", "\xed\xa0\x80",
}

func randomString(rng *rand.Rand) string {
	var sb strings.Builder
	for range rng.IntN(4) {
		sb.WriteString(awkward[rng.IntN(len(awkward))])
	}
	return sb.String()
}

func randomList(rng *rand.Rand) []string {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	list := make([]string, 1+rng.IntN(4))
	for i := range list {
		list[i] = randomString(rng)
	}
	return list
}

func randomResult(rng *rand.Rand) schemas.Result {
	zones := []*time.Location{time.UTC, time.FixedZone("x", 5*3600+1800), time.FixedZone("y", -8*3600)}
	at := time.Unix(rng.Int64N(1<<35), rng.Int64N(1e9)*int64(rng.IntN(2))).In(zones[rng.IntN(len(zones))])
	var r schemas.Result
	r.RequestID, r.ConferenceID, r.WorkerID = randomString(rng), randomString(rng), randomString(rng)
	r.ParticipantIDs, r.Disconnected, r.AlreadyGone = randomList(rng), randomList(rng), randomList(rng)
	r.FailedParticipantIDs, r.BatchIDs = randomList(rng), randomList(rng)
	r.Status = schemas.Status(randomString(rng))
	r.Attempts, r.HTTPStatus = rng.IntN(3)-1, []int{0, 200, 404, 429}[rng.IntN(4)]
	r.ErrorCode, r.ErrorMessage, r.APIRequestID = randomString(rng), randomString(rng), randomString(rng)
	r.ReplayOf = randomString(rng)
	if rng.IntN(4) > 0 {
		r.ReceivedAt, r.CompletedAt = at, at.Add(time.Duration(rng.Int64N(1e10)))
	}
	return r
}

func TestResultMarshalJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 20000 {
		r := randomResult(rng)
		got, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if want := reflected(t, r); !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestResultMarshalJSONRefusesYearsJSONCannotCarry(t *testing.T) {
	r := schemas.Result{RequestID: "r", ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := r.MarshalJSON(); err == nil || !strings.Contains(err.Error(), "receivedAt") {
		t.Fatalf("year 10000: got %v, want an error naming receivedAt", err)
	}
	if _, err := json.Marshal(r); err == nil {
		t.Fatal("json.Marshal of year 10000 succeeded")
	}
}

func FuzzResultMarshalJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s, 3, int64(1764500000))
	}
	f.Fuzz(func(t *testing.T, a, b string, n int, sec int64) {
		at := time.Unix(sec%(1<<35), 0).UTC()
		r := schemas.Result{RequestID: a, ConferenceID: b, ParticipantIDs: []string{a, b}, Status: schemas.Status(b),
			Disconnected: []string{b}, Attempts: n, HTTPStatus: n, ErrorMessage: a, ReceivedAt: at, CompletedAt: at, WorkerID: b, ReplayOf: a}
		got, err := r.MarshalJSON()
		if err != nil {
			t.Skip(err)
		}
		if want := reflected(t, r); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
