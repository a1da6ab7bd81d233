package meetingsim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Faults says which failures the simulator injects. The zero value injects
// none. Latency and outages apply to every vendor API call; flow control and
// errors apply to hang-up calls only, so that a test can make hang-ups fail
// while tokens keep coming. An injected fault never changes a meeting.
//
// Rates are probabilities in [0, 1], drawn per call from the simulator's
// seeded random source: a rate of 1 makes a fault certain.
type Faults struct {
	// LatencyBase is added to every vendor call before it is handled.
	// Defaults to 0.
	LatencyBase time.Duration
	// LatencyJitter adds a uniform random delay in [0, LatencyJitter).
	// Defaults to 0.
	LatencyJitter time.Duration
	// SpikeRate is the probability that a call also waits SpikeLatency.
	// Defaults to 0.
	SpikeRate float64
	// SpikeLatency is the extra delay of a spike. Defaults to 0.
	SpikeLatency time.Duration
	// Errors are injected error answers to hang-up calls. One draw per
	// call picks at most one of them, so their rates must add up to at
	// most 1. Defaults to none.
	Errors []ErrorFault
	// FlowControlRate is the probability that a hang-up call is answered
	// 429 with CodeFlowControl. It is drawn before Errors. Defaults to 0.
	FlowControlRate float64
	// RetryAfter, when positive, is sent with flow control answers as a
	// Retry-After header in whole seconds, rounded up. Defaults to 0: no
	// header.
	RetryAfter time.Duration
	// Down makes every vendor call fail: 503 with CodeServiceError, or a
	// closed connection if DropConnections is set. Defaults to false.
	Down bool
	// DropConnections makes an outage close the connection without an
	// answer instead of answering 503. Defaults to false.
	DropConnections bool
	// DownWindows are outages in time, by the simulator's clock: the
	// service is down at t when Start <= t < End for some window.
	// Defaults to none.
	DownWindows []Window
}

// ErrorFault is an injected error answer.
type ErrorFault struct {
	// Rate is the probability of this answer per hang-up call.
	Rate float64 `json:"rate"`
	// Status is the HTTP status, 400 to 599. Zero means 500.
	Status int `json:"status"`
	// Code is the error_code. Empty means CodeServiceError.
	Code string `json:"code"`
	// Message is the error_msg. Empty means the usual message of Code, or
	// "INJECTED_ERROR" for a code the simulator does not know.
	Message string `json:"message"`
}

// apiError returns the answer e injects, with its defaults filled in.
func (e ErrorFault) apiError() *apiError {
	out := &apiError{Status: e.Status, Code: e.Code, Message: e.Message}
	if out.Status < 400 || out.Status > 599 {
		out.Status = 500 // 0 by default; anything else out of range by mistake
	}
	if out.Code == "" {
		out.Code = CodeServiceError
	}
	if out.Message == "" {
		out.Message = messages[out.Code]
		if out.Message == "" {
			out.Message = "INJECTED_ERROR"
		}
	}
	return out
}

// Window is a span of time, Start inclusive, End exclusive.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// contains reports whether t falls in w.
func (w Window) contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// Validate reports the first field of f that breaks its rule: durations
// are not negative, rates are within [0, 1], error rates add up to at most
// 1, error statuses are 0 or 400 to 599, and windows end after they start.
func (f Faults) Validate() error { return f.validate("Faults") }

func (f Faults) validate(prefix string) error {
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"LatencyBase", f.LatencyBase},
		{"LatencyJitter", f.LatencyJitter},
		{"SpikeLatency", f.SpikeLatency},
		{"RetryAfter", f.RetryAfter},
	}
	for _, d := range durations {
		if d.d < 0 {
			return fmt.Errorf("%s.%s must not be negative, got %v", prefix, d.name, d.d)
		}
	}
	if err := checkRate(prefix+".SpikeRate", f.SpikeRate); err != nil {
		return err
	}
	if err := checkRate(prefix+".FlowControlRate", f.FlowControlRate); err != nil {
		return err
	}
	sum := 0.0
	for i, e := range f.Errors {
		if err := checkRate(fmt.Sprintf("%s.Errors[%d].Rate", prefix, i), e.Rate); err != nil {
			return err
		}
		if e.Status != 0 && (e.Status < 400 || e.Status > 599) {
			return fmt.Errorf("%s.Errors[%d].Status must be 0 or within 400 to 599, got %d", prefix, i, e.Status)
		}
		sum += e.Rate
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("%s.Errors rates must add up to at most 1, got %g", prefix, sum)
	}
	for i, w := range f.DownWindows {
		if !w.End.After(w.Start) {
			return fmt.Errorf("%s.DownWindows[%d].End must be after Start", prefix, i)
		}
	}
	return nil
}

func checkRate(name string, r float64) error {
	if !(r >= 0 && r <= 1) { // also rejects NaN
		return fmt.Errorf("%s must be within [0, 1], got %g", name, r)
	}
	return nil
}

// clone returns a copy of f that shares no slice with it.
func (f Faults) clone() Faults {
	f.Errors = slices.Clone(f.Errors)
	f.DownWindows = slices.Clone(f.DownWindows)
	return f
}

// down reports whether the service is down at now.
func (f Faults) down(now time.Time) bool {
	if f.Down {
		return true
	}
	return slices.ContainsFunc(f.DownWindows, func(w Window) bool { return w.contains(now) })
}

// faultPlan is what happens to one vendor call, decided up front.
type faultPlan struct {
	down        bool
	drop        bool
	latency     time.Duration
	flowControl bool
	retryAfter  time.Duration
	err         *apiError
}

// plan draws the faults of one call from rng. It always draws four numbers,
// so that the same seed and the same sequence of calls give the same
// faults whatever the settings.
func (f Faults) plan(rng *rand.Rand, now time.Time) faultPlan {
	jitter, spike, flow, pick := rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()
	p := faultPlan{down: f.down(now), drop: f.DropConnections, retryAfter: f.RetryAfter}
	p.latency = max(f.LatencyBase, 0) + time.Duration(jitter*float64(max(f.LatencyJitter, 0)))
	if spike < f.SpikeRate {
		p.latency += max(f.SpikeLatency, 0)
	}
	p.flowControl = flow < f.FlowControlRate
	acc := 0.0
	for _, e := range f.Errors {
		acc += e.Rate
		if pick < acc {
			p.err = e.apiError()
			break
		}
	}
	return p
}

// retryAfterSeconds is d in whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// faultsJSON is the JSON form of Faults, with durations as strings such as
// "250ms".
type faultsJSON struct {
	LatencyBase     duration     `json:"latencyBase"`
	LatencyJitter   duration     `json:"latencyJitter"`
	SpikeRate       float64      `json:"spikeRate"`
	SpikeLatency    duration     `json:"spikeLatency"`
	Errors          []ErrorFault `json:"errors,omitempty"`
	FlowControlRate float64      `json:"flowControlRate"`
	RetryAfter      duration     `json:"retryAfter"`
	Down            bool         `json:"down"`
	DropConnections bool         `json:"dropConnections"`
	DownWindows     []Window     `json:"downWindows,omitempty"`
}

// MarshalJSON encodes f with camelCase names and durations as strings
// ("1.5s").
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		LatencyBase:     duration(f.LatencyBase),
		LatencyJitter:   duration(f.LatencyJitter),
		SpikeRate:       f.SpikeRate,
		SpikeLatency:    duration(f.SpikeLatency),
		Errors:          f.Errors,
		FlowControlRate: f.FlowControlRate,
		RetryAfter:      duration(f.RetryAfter),
		Down:            f.Down,
		DropConnections: f.DropConnections,
		DownWindows:     f.DownWindows,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes. A missing field is
// zero; an unknown field is an error, so that a typo does not silently
// leave a fault off.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*f = Faults{
		LatencyBase:     time.Duration(j.LatencyBase),
		LatencyJitter:   time.Duration(j.LatencyJitter),
		SpikeRate:       j.SpikeRate,
		SpikeLatency:    time.Duration(j.SpikeLatency),
		Errors:          j.Errors,
		FlowControlRate: j.FlowControlRate,
		RetryAfter:      time.Duration(j.RetryAfter),
		Down:            j.Down,
		DropConnections: j.DropConnections,
		DownWindows:     j.DownWindows,
	}
	return nil
}

// duration is a time.Duration that reads and writes JSON strings such as
// "250ms".
type duration time.Duration

func (d duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}
