package meetingsim

import (
	"fmt"
	"slices"
)

// MeetingState is the state of a simulated meeting.
type MeetingState int

// The states of a meeting. Only a running meeting issues tokens and accepts
// control calls. The zero value is StateRunning.
const (
	StateRunning MeetingState = iota
	StateNotStarted
	StateEnded
)

var stateNames = [...]string{
	StateRunning:    "running",
	StateNotStarted: "not_started",
	StateEnded:      "ended",
}

// String returns "running", "not_started" or "ended".
func (st MeetingState) String() string {
	if st.valid() {
		return stateNames[st]
	}
	return fmt.Sprintf("MeetingState(%d)", int(st))
}

func (st MeetingState) valid() bool { return st >= StateRunning && st <= StateEnded }

// MarshalText encodes st as its String.
func (st MeetingState) MarshalText() ([]byte, error) {
	if !st.valid() {
		return nil, fmt.Errorf("invalid meeting state %d", int(st))
	}
	return []byte(st.String()), nil
}

// UnmarshalText accepts "running", "not_started" or "ended".
func (st *MeetingState) UnmarshalText(b []byte) error {
	for i, name := range stateNames {
		if string(b) == name {
			*st = MeetingState(i)
			return nil
		}
	}
	return fmt.Errorf("meeting state %q: want running, not_started or ended", b)
}

// Meeting describes a meeting to add to the simulator.
type Meeting struct {
	// ID is the conference ID used in the API's conferenceID parameter.
	ID string `json:"id"`
	// HostPassword is what X-Password must carry to obtain a token.
	HostPassword string `json:"hostPassword"`
	// Participants are the IDs online when the meeting is added.
	Participants []string `json:"participants,omitempty"`
	// State is the meeting's state; the zero value is StateRunning.
	State MeetingState `json:"state"`
}

// validate checks m and names the field at fault.
func (m Meeting) validate() error {
	if m.ID == "" {
		return fmt.Errorf("Meeting.ID must not be empty")
	}
	if m.HostPassword == "" {
		return fmt.Errorf("Meeting.HostPassword must not be empty")
	}
	if !m.State.valid() {
		return fmt.Errorf("Meeting.State must be StateRunning, StateNotStarted or StateEnded, got %d", int(m.State))
	}
	if slices.Contains(m.Participants, "") {
		return fmt.Errorf("Meeting.Participants must not contain an empty ID")
	}
	return nil
}

// MeetingSummary is what the simulator tells about a meeting without
// revealing its password: its ID, state and how many participants are
// online.
type MeetingSummary struct {
	ID     string       `json:"id"`
	State  MeetingState `json:"state"`
	Online int          `json:"online"`
}

// GenerateMeetings returns count running meetings "conf-0001", "conf-0002",
// ... each with the participants "p-0001" ... "p-<participants>" online and
// password as host password. It is how the meetingsim command seeds a demo.
func GenerateMeetings(count, participants int, password string) []Meeting {
	out := make([]Meeting, 0, max(count, 0))
	for i := 1; i <= count; i++ {
		m := Meeting{ID: fmt.Sprintf("conf-%04d", i), HostPassword: password, State: StateRunning}
		m.Participants = make([]string, 0, max(participants, 0))
		for j := 1; j <= participants; j++ {
			m.Participants = append(m.Participants, fmt.Sprintf("p-%04d", j))
		}
		out = append(out, m)
	}
	return out
}

// meeting is the simulator's live copy of a Meeting.
type meeting struct {
	id       string
	password string
	state    MeetingState
	online   map[string]struct{}
}

// onlineIDs returns the online participant IDs, sorted.
func (m *meeting) onlineIDs() []string {
	ids := make([]string, 0, len(m.online))
	for id := range m.online {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// stateError is the vendor's answer to a control call on a meeting in state
// st, or nil if the meeting is running.
func stateError(st MeetingState) *apiError {
	switch st {
	case StateEnded:
		return newAPIError(400, CodeMeetingEnded)
	case StateNotStarted:
		return newAPIError(400, CodeMeetingNotStarted)
	}
	return nil
}
