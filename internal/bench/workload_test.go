package bench

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

func TestGenerateIsDeterministicBySeed(t *testing.T) {
	cfg := WorkloadConfig{Requests: 2000, Conferences: 100, Seed: 42}
	a, err := Generate(cfg)
	require.NoError(t, err)
	b, err := Generate(cfg)
	require.NoError(t, err)
	require.Equal(t, a, b)

	cfg.Seed = 43
	c, err := Generate(cfg)
	require.NoError(t, err)
	require.NotEqual(t, a.Requests, c.Requests)
}

func TestGenerateShapesTheWorkload(t *testing.T) {
	cfg := WorkloadConfig{Requests: 5000, Conferences: 200, BurstMin: 5, BurstMax: 20, MaxIDsPerRequest: 3, Seed: 9}
	w, err := Generate(cfg)
	require.NoError(t, err)
	require.Len(t, w.Requests, 5000)
	require.Len(t, w.Conferences, 200)

	bursts := map[int][]Request{}
	seenIDs := map[string]string{} // participant → conference
	requestIDs := map[string]bool{}
	totalIDs := 0
	for i, r := range w.Requests {
		require.False(t, requestIDs[r.ID], "request ID %s repeats", r.ID)
		requestIDs[r.ID] = true
		require.Contains(t, w.Conferences, r.ConferenceID)
		require.GreaterOrEqual(t, len(r.ParticipantIDs), 1)
		require.LessOrEqual(t, len(r.ParticipantIDs), 3)
		for _, p := range r.ParticipantIDs {
			_, used := seenIDs[p]
			require.False(t, used, "participant %s named twice", p)
			seenIDs[p] = r.ConferenceID
			totalIDs++
		}
		// The payload is a valid request of the contract.
		req, verr := schemas.DecodeRequest(schemas.DefaultRequestSubjectPrefix+"."+r.ConferenceID, r.Payload, schemas.DecodeOptions{})
		require.Nil(t, verr, "request %d", i)
		require.Equal(t, r.ID, req.RequestID)
		require.Equal(t, r.ParticipantIDs, req.ParticipantIDs)
		bursts[r.Burst] = append(bursts[r.Burst], r)
	}
	require.Equal(t, totalIDs, w.IDs)
	require.Len(t, bursts, w.Bursts)

	// Bursty: each burst is one run of consecutive requests for one
	// conference, of 5 to 20 requests (the last may be cut short).
	for b := 0; b < w.Bursts; b++ {
		reqs := bursts[b]
		require.NotEmpty(t, reqs)
		for _, r := range reqs {
			require.Equal(t, reqs[0].ConferenceID, r.ConferenceID)
		}
		require.LessOrEqual(t, len(reqs), 20)
		if b < w.Bursts-1 {
			require.GreaterOrEqual(t, len(reqs), 5, "burst %d", b)
		}
	}
	for i := 1; i < len(w.Requests); i++ {
		require.GreaterOrEqual(t, w.Requests[i].Burst, w.Requests[i-1].Burst)
	}

	// Everyone requested is online in the meeting, and no one else.
	online := 0
	for conf, ids := range w.Online {
		for _, p := range ids {
			require.Equal(t, conf, seenIDs[p])
		}
		online += len(ids)
	}
	require.Equal(t, w.IDs, online)
	require.Equal(t, len(w.Online), w.ConferencesUsed())

	// Skewed: the busiest conference gets far more than an even share.
	busiest := 0
	for _, ids := range w.Online {
		busiest = max(busiest, len(ids))
	}
	require.Greater(t, busiest, 5*w.IDs/cfg.Conferences)
}

func TestRandomPatternShufflesTheSameRequests(t *testing.T) {
	cfg := WorkloadConfig{Requests: 3000, Conferences: 50, Seed: 5}
	bursty, err := Generate(cfg)
	require.NoError(t, err)
	cfg.Pattern = PatternRandom
	random, err := Generate(cfg)
	require.NoError(t, err)

	require.ElementsMatch(t, bursty.Requests, random.Requests)
	require.NotEqual(t, bursty.Requests, random.Requests)
	require.Equal(t, bursty.Bound, random.Bound)
	require.Equal(t, bursty.Floor, random.Floor)
	require.Equal(t, bursty.Online, random.Online)
}

func TestCallBound(t *testing.T) {
	ids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%03d", prefix, i)
		}
		return out
	}
	reqs := []Request{
		// Burst 0: 60 + 60 distinct IDs: 2 calls of at most 100.
		{Burst: 0, ParticipantIDs: ids("a", 60)},
		{Burst: 0, ParticipantIDs: ids("b", 60)},
		// Burst 1: exactly 100: 1 call.
		{Burst: 1, ParticipantIDs: ids("c", 100)},
		// Burst 2: the same 50 IDs twice count once: 1 call.
		{Burst: 2, ParticipantIDs: ids("d", 50)},
		{Burst: 2, ParticipantIDs: ids("d", 50)},
		// Burst 3, listed out of order: 101 IDs: 2 calls.
		{Burst: 3, ParticipantIDs: ids("e", 1)},
		{Burst: 1, ParticipantIDs: nil},
		{Burst: 3, ParticipantIDs: ids("f", 100)},
	}
	require.Equal(t, 6, CallBound(reqs, 100))
	require.Equal(t, 2+1+1+2, CallBound(reqs, 100))
	require.Equal(t, 120/10+10+5+11, CallBound(reqs, 10))
	require.Equal(t, 0, CallBound(reqs, 0))
}

func TestGenerateBoundAndFloor(t *testing.T) {
	w, err := Generate(WorkloadConfig{Requests: 4000, Conferences: 40, BurstMin: 30, BurstMax: 60, MaxBatch: 50, Seed: 3})
	require.NoError(t, err)
	// Recount the bound burst by burst: every ID is fresh, so the distinct
	// IDs of a burst are all of its IDs.
	perBurst := map[int]int{}
	for _, r := range w.Requests {
		perBurst[r.Burst] += len(r.ParticipantIDs)
	}
	bound := 0
	for _, n := range perBurst {
		bound += (n + 49) / 50
	}
	require.Equal(t, bound, w.Bound)
	floor := 0
	for _, ids := range w.Online {
		floor += (len(ids) + 49) / 50
	}
	require.Equal(t, floor, w.Floor)
	require.LessOrEqual(t, w.Floor, w.Bound)
}

func TestGenerateOneConference(t *testing.T) {
	w, err := Generate(WorkloadConfig{Requests: 100, Conferences: 1})
	require.NoError(t, err)
	require.Len(t, w.Requests, 100)
	require.Equal(t, 1, w.ConferencesUsed())
	for _, r := range w.Requests {
		require.Equal(t, w.Conferences[0], r.ConferenceID)
	}
}

func TestGenerateRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]WorkloadConfig{
		"skew":     {Skew: 1},
		"bursts":   {BurstMin: 10, BurstMax: 5},
		"pattern":  {Pattern: "zigzag"},
		"requests": {Requests: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Generate(cfg)
			require.Error(t, err)
		})
	}
}

func TestParse(t *testing.T) {
	p, err := ParsePattern("Random")
	require.NoError(t, err)
	require.Equal(t, PatternRandom, p)
	_, err = ParsePattern("zigzag")
	require.Error(t, err)

	ps, err := ParsePipelines("hangup, limit")
	require.NoError(t, err)
	require.Equal(t, []Pipeline{PipelineLimit, PipelineHangup}, ps)
	ps, err = ParsePipelines("all")
	require.NoError(t, err)
	require.Equal(t, AllPipelines, ps)
	_, err = ParsePipelines("limit,fast")
	require.Error(t, err)
	_, err = ParsePipelines("")
	require.Error(t, err)
}
