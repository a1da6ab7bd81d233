package meetingsim

import (
	"maps"
	"slices"
	"time"
)

// Call records one hang-up call, whatever its outcome.
type Call struct {
	// Time is when the call arrived, by the simulator's clock.
	Time time.Time `json:"time"`
	// ConferenceID is the conferenceID query parameter as sent.
	ConferenceID string `json:"conferenceID"`
	// ParticipantIDs are the IDs in the body as sent, if the body could be
	// decoded.
	ParticipantIDs []string `json:"participantIDs"`
	// Status is the HTTP status answered; 0 if none was (dropped
	// connection, or the client went away during injected latency).
	Status int `json:"status"`
	// Code is the error_code answered; empty on success.
	Code string `json:"code,omitempty"`
	// RequestID is the X-Request-Id of the answer.
	RequestID string `json:"requestID"`
	// Injected reports that the outcome was an injected fault (outage,
	// flow control, injected error, or the client leaving during injected
	// latency) rather than the simulated vendor's own answer.
	Injected bool `json:"injected"`
	// Fault names the injected fault: "outage", "dropped", "flow_control",
	// "error" or "canceled"; empty when Injected is false.
	Fault string `json:"fault,omitempty"`
	// Answered is when the simulator decided the answer, after its
	// injected latency: the call ran from Time to Answered.
	Answered time.Time `json:"answered"`
	// Caller is the X-Sim-Caller header of the call, which a test sets to
	// tell apart the workers sharing one simulator; empty when absent.
	Caller string `json:"caller,omitempty"`
}

// HeaderCaller names the caller of a call in the simulator's records
// (Call.Caller). It is the simulator's own, not the vendor's.
const HeaderCaller = "X-Sim-Caller"

// Disconnect records one participant actually removed from a meeting.
type Disconnect struct {
	ConferenceID  string    `json:"conferenceID"`
	ParticipantID string    `json:"participantID"`
	Time          time.Time `json:"time"`
	// RequestID is the X-Request-Id of the hang-up call that removed the
	// participant.
	RequestID string `json:"requestID"`
}

// Stats counts what the simulator has done since it was created or Reset.
type Stats struct {
	// Calls counts hang-up calls; CallsByStatus splits them by the HTTP
	// status answered (0 for no answer).
	Calls         int         `json:"calls"`
	CallsByStatus map[int]int `json:"callsByStatus"`
	// InjectedFaults counts hang-up calls answered by an injected fault.
	InjectedFaults int `json:"injectedFaults"`
	// Disconnects counts participants actually removed.
	Disconnects int `json:"disconnects"`
	// TokenRequests counts calls to the token API, successful or not,
	// except those answered by an injected outage or abandoned during
	// injected latency; TokensIssued the new tokens it (or IssueToken)
	// handed out; TokensRenewed the keep-alives that extended an existing
	// token.
	TokenRequests int `json:"tokenRequests"`
	TokensIssued  int `json:"tokensIssued"`
	TokensRenewed int `json:"tokensRenewed"`
	// TokenCallsByConference splits TokenRequests by the conferenceID
	// parameter as sent; calls without one are left out. IssueToken is
	// not a call and is not counted.
	TokenCallsByConference map[string]int `json:"tokenCallsByConference"`
	// TokensReplaced counts tokens, still valid, that TokenModeOneLive
	// ended because a newer token of their meeting was issued.
	TokensReplaced int `json:"tokensReplaced"`
	// RealTimeInfoRequests counts calls to the realTimeInfo API.
	RealTimeInfoRequests int `json:"realTimeInfoRequests"`
}

func (st Stats) clone() Stats {
	st.CallsByStatus = maps.Clone(st.CallsByStatus)
	if st.CallsByStatus == nil {
		st.CallsByStatus = map[int]int{}
	}
	st.TokenCallsByConference = maps.Clone(st.TokenCallsByConference)
	if st.TokenCallsByConference == nil {
		st.TokenCallsByConference = map[string]int{}
	}
	return st
}

// recordCallLocked appends c and the disconnects it caused. s.mu is held.
func (s *Simulator) recordCallLocked(c Call, removed []string) {
	c.Answered = s.now()
	s.calls = appendCapped(s.calls, c, s.maxRecords)
	s.stats.Calls++
	if s.stats.CallsByStatus == nil {
		s.stats.CallsByStatus = map[int]int{}
	}
	s.stats.CallsByStatus[c.Status]++
	if c.Injected {
		s.stats.InjectedFaults++
	}
	for _, id := range removed {
		s.disconnects = appendCapped(s.disconnects, Disconnect{
			ConferenceID:  c.ConferenceID,
			ParticipantID: id,
			Time:          c.Time,
			RequestID:     c.RequestID,
		}, s.maxRecords)
		s.stats.Disconnects++
	}
}

// appendCapped appends v to xs and, when limit is positive, keeps only the
// newest limit elements. It trims once xs reaches twice the limit, so the
// cost per append stays constant.
func appendCapped[T any](xs []T, v T, limit int) []T {
	xs = append(xs, v)
	if limit > 0 && len(xs) >= 2*limit {
		xs = slices.Clone(xs[len(xs)-limit:])
	}
	return xs
}

// lastN returns a copy of the newest limit elements of xs, or all of them
// when limit is not positive.
func lastN[T any](xs []T, limit int) []T {
	if limit > 0 && len(xs) > limit {
		xs = xs[len(xs)-limit:]
	}
	out := make([]T, len(xs))
	copy(out, xs)
	return out
}

// Calls returns a copy of the recorded hang-up calls, oldest first.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := lastN(s.calls, s.maxRecords)
	for i := range out {
		out[i].ParticipantIDs = slices.Clone(out[i].ParticipantIDs)
	}
	return out
}

// Disconnects returns a copy of the recorded disconnects, oldest first.
func (s *Simulator) Disconnects() []Disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lastN(s.disconnects, s.maxRecords)
}

// Stats returns a copy of the counters.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// TokenCalls returns how many calls to the token API named conferenceID,
// as counted in Stats.TokenCallsByConference, without copying the counters.
func (s *Simulator) TokenCalls(conferenceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.TokenCallsByConference[conferenceID]
}

// Reset clears the recorded calls, disconnects and counters. Meetings,
// tokens, faults, modes and the token lifetime stay as they are.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.disconnects = nil
	s.stats = Stats{}
}
