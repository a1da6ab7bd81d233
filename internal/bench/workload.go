package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/hangup-dev/hangup/schemas"
)

// Pattern is the order in which the backlog is published.
type Pattern string

// The patterns.
const (
	// PatternBursty publishes the requests burst after burst: a run of 1 to
	// BurstMax requests for one conference, then the next.
	PatternBursty Pattern = "bursty"
	// PatternRandom publishes the same requests in random order.
	PatternRandom Pattern = "random"
)

// ParsePattern parses "bursty" or "random".
func ParsePattern(s string) (Pattern, error) {
	switch p := Pattern(strings.ToLower(strings.TrimSpace(s))); p {
	case PatternBursty, PatternRandom:
		return p, nil
	}
	return "", fmt.Errorf("pattern %q: want bursty or random", s)
}

// WorkloadConfig shapes a generated workload.
type WorkloadConfig struct {
	// Requests to generate. Defaults to 100000.
	Requests int
	// Conferences to choose from. Defaults to 1000.
	Conferences int
	// Skew is the Zipf exponent s (> 1) of the choice of conference for
	// each burst: conference k is chosen with probability proportional to
	// 1/(k+1)^s. Defaults to 1.1.
	Skew float64
	// BurstMin and BurstMax bound the requests in one burst. Default to 1
	// and 50.
	BurstMin, BurstMax int
	// MaxIDsPerRequest: each request names 1 to this many participants.
	// Defaults to 3.
	MaxIDsPerRequest int
	// Pattern is the publishing order. Defaults to PatternBursty.
	Pattern Pattern
	// Seed makes the workload: the same seed and settings give the same
	// requests. Defaults to 1.
	Seed uint64
	// MaxBatch is the most participant IDs one API call may carry, for the
	// bound on API calls. Defaults to 100, hangup's default.
	MaxBatch int
}

func (c *WorkloadConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Requests, 100000)
	def(&c.Conferences, 1000)
	def(&c.BurstMin, 1)
	def(&c.BurstMax, 50)
	def(&c.MaxIDsPerRequest, 3)
	def(&c.MaxBatch, 100)
	if c.Skew == 0 {
		c.Skew = 1.1
	}
	if c.Pattern == "" {
		c.Pattern = PatternBursty
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

func (c *WorkloadConfig) validate() error {
	var errs []error
	if c.Requests < 1 {
		errs = append(errs, fmt.Errorf("Requests: must be at least 1, got %d", c.Requests))
	}
	if c.Conferences < 1 || c.Conferences > 999999 {
		errs = append(errs, fmt.Errorf("Conferences: must be between 1 and 999999, got %d", c.Conferences))
	}
	if !(c.Skew > 1) {
		errs = append(errs, fmt.Errorf("Skew: must be greater than 1 (a Zipf exponent), got %g", c.Skew))
	}
	if c.BurstMin < 1 || c.BurstMax < c.BurstMin {
		errs = append(errs, fmt.Errorf("BurstMin, BurstMax: must satisfy 1 <= BurstMin <= BurstMax, got %d and %d", c.BurstMin, c.BurstMax))
	}
	if c.MaxIDsPerRequest < 1 || c.MaxIDsPerRequest > schemas.DefaultMaxParticipants {
		errs = append(errs, fmt.Errorf("MaxIDsPerRequest: must be between 1 and %d, got %d", schemas.DefaultMaxParticipants, c.MaxIDsPerRequest))
	}
	if c.Pattern != PatternBursty && c.Pattern != PatternRandom {
		errs = append(errs, fmt.Errorf("Pattern: must be %q or %q, got %q", PatternBursty, PatternRandom, c.Pattern))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("MaxBatch: must be at least 1, got %d", c.MaxBatch))
	}
	return errors.Join(errs...)
}

// Request is one generated request.
type Request struct {
	ID             string
	ConferenceID   string
	ParticipantIDs []string
	// Burst is the index of the burst the request belongs to.
	Burst int
	// Payload is the request event as published (JSON).
	Payload []byte
}

// Workload is a generated set of requests in publishing order.
type Workload struct {
	Config   WorkloadConfig
	Requests []Request
	// Conferences are the IDs of all conferences, including those no
	// request names.
	Conferences []string
	// Online lists, per conference, the participants online at the start:
	// exactly those the requests name.
	Online map[string][]string
	// Bursts is how many bursts were generated; IDs how many participant
	// IDs the requests name in all (each exactly once).
	Bursts int
	IDs    int
	// Bound is the bound on API calls: the sum over bursts of
	// ceil(distinct IDs in the burst / MaxBatch). Floor is the least any
	// pipeline could make: the sum over conferences of
	// ceil(IDs of the conference / MaxBatch).
	Bound int
	Floor int
}

// Generate makes the workload cfg describes.
func Generate(cfg WorkloadConfig) (*Workload, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("workload config: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	zipf := rand.NewZipf(rng, cfg.Skew, 1, uint64(cfg.Conferences-1))
	w := &Workload{Config: cfg, Online: map[string][]string{}}
	w.Conferences = make([]string, cfg.Conferences)
	for i := range w.Conferences {
		w.Conferences[i] = fmt.Sprintf("conf-%06d", i+1)
	}
	w.Requests = make([]Request, 0, cfg.Requests)
	nextID := 0
	for len(w.Requests) < cfg.Requests {
		conf := w.Conferences[zipf.Uint64()]
		size := cfg.BurstMin + rng.IntN(cfg.BurstMax-cfg.BurstMin+1)
		size = min(size, cfg.Requests-len(w.Requests))
		for range size {
			n := 1 + rng.IntN(cfg.MaxIDsPerRequest)
			ids := make([]string, n)
			for j := range ids {
				nextID++
				ids[j] = fmt.Sprintf("p-%08d", nextID)
			}
			w.Online[conf] = append(w.Online[conf], ids...)
			w.Requests = append(w.Requests, Request{
				ID:             fmt.Sprintf("req-%08d", len(w.Requests)+1),
				ConferenceID:   conf,
				ParticipantIDs: ids,
				Burst:          w.Bursts,
			})
		}
		w.Bursts++
	}
	w.IDs = nextID
	w.Bound = CallBound(w.Requests, cfg.MaxBatch)
	for _, ids := range w.Online {
		w.Floor += ceilDiv(len(ids), cfg.MaxBatch)
	}
	if cfg.Pattern == PatternRandom {
		rng.Shuffle(len(w.Requests), func(i, j int) { w.Requests[i], w.Requests[j] = w.Requests[j], w.Requests[i] })
	}
	for i := range w.Requests {
		r := &w.Requests[i]
		data, err := json.Marshal(schemas.Request{
			RequestID: r.ID, ConferenceID: r.ConferenceID, ParticipantIDs: r.ParticipantIDs,
			Reason: "bench: policy violation", RequestedBy: "hangup-bench",
		})
		if err != nil {
			return nil, fmt.Errorf("encode request %s: %w", r.ID, err)
		}
		r.Payload = data
	}
	return w, nil
}

// CallBound is the sum over bursts of ceil(distinct participant IDs in the
// burst / maxBatch): the calls a batcher that sees each burst whole would
// make. Requests belong to bursts by their Burst field, in any order.
func CallBound(reqs []Request, maxBatch int) int {
	if maxBatch < 1 {
		return 0
	}
	ids := map[int]map[string]struct{}{}
	for _, r := range reqs {
		set := ids[r.Burst]
		if set == nil {
			set = map[string]struct{}{}
			ids[r.Burst] = set
		}
		for _, p := range r.ParticipantIDs {
			set[p] = struct{}{}
		}
	}
	bound := 0
	for _, set := range ids {
		bound += ceilDiv(len(set), maxBatch)
	}
	return bound
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// ConferencesUsed is how many conferences at least one request names.
func (w *Workload) ConferencesUsed() int { return len(w.Online) }
