package meetingsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mode says what a hang-up call does with participant IDs that are not
// online. The vendor does not document it; the worker must be correct
// either way.
type Mode int

const (
	// ModeLenient ignores IDs that are not online: the call succeeds and
	// removes the online ones.
	ModeLenient Mode = iota
	// ModeStrict rejects the whole call with 400 CodeParticipantNotFound
	// if any ID is not online, and removes nobody.
	ModeStrict
)

// String returns "lenient" or "strict".
func (m Mode) String() string {
	switch m {
	case ModeLenient:
		return "lenient"
	case ModeStrict:
		return "strict"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

func (m Mode) valid() bool { return m == ModeLenient || m == ModeStrict }

// MarshalText encodes m as its String.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.valid() {
		return nil, fmt.Errorf("invalid mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText accepts "lenient" or "strict".
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMode parses "lenient" or "strict", ignoring case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "lenient":
		return ModeLenient, nil
	case "strict":
		return ModeStrict, nil
	}
	return 0, fmt.Errorf("mode %q: want lenient or strict", s)
}

// DefaultTokenLifetime is how long the vendor's control tokens live.
const DefaultTokenLifetime = 30 * time.Minute

// Config configures a Simulator.
type Config struct {
	// TokenLifetime is how long a control token stays valid after it is
	// issued or kept alive. Defaults to 30 minutes. SetTokenLifetime
	// changes it at run time.
	TokenLifetime time.Duration
	// TokenMode is what a new token does to the earlier tokens of its
	// meeting. Defaults to TokenModeMany. SetTokenMode changes it at run
	// time.
	TokenMode TokenMode
	// Mode is what a hang-up call does with IDs that are not online.
	// Defaults to ModeLenient.
	Mode Mode
	// Seed seeds the random source of fault injection: the same seed and
	// the same sequence of calls give the same faults. Defaults to 0.
	Seed uint64
	// Faults are the faults injected from the start. Defaults to none.
	Faults Faults
	// Now is the clock used for token expiry, outage windows and records.
	// Injected latency always waits in real time. Defaults to time.Now.
	Now func() time.Time
	// MaxRecords, when positive, keeps only the newest MaxRecords calls
	// and disconnects, for long soak runs; counters are never trimmed.
	// Defaults to 0, which keeps everything.
	MaxRecords int
}

// Errors returned by the Simulator's methods.
var (
	ErrMeetingNotFound   = errors.New("meeting not found")
	ErrMeetingExists     = errors.New("meeting already exists")
	ErrMeetingNotRunning = errors.New("meeting not running")
)

// Simulator is an in-memory Huawei Cloud Meeting control API. It is safe
// for concurrent use.
type Simulator struct {
	now        func() time.Time
	maxRecords int
	handler    http.Handler

	mu            sync.Mutex
	rng           *rand.Rand // guarded by mu: rand.Rand is not safe for concurrent use
	mode          Mode
	tokenMode     TokenMode
	tokenLifetime time.Duration
	faults        Faults
	meetings      map[string]*meeting
	tokens        map[string]tokenGrant
	// confTokens indexes tokens by conference ID, so that the one-live
	// rule finds a meeting's tokens without scanning them all.
	confTokens   map[string]map[string]struct{}
	tokenPruneAt int
	calls        []Call
	disconnects  []Disconnect
	stats        Stats
	// malformed are participant IDs the vendor refuses as parameters: a
	// hang-up call naming one is rejected as a whole.
	malformed map[string]bool
}

// tokenGrant is what a control token stands for.
type tokenGrant struct {
	conferenceID string
	expires      time.Time
}

// minTokenPrune is the token count below which expired tokens are never
// pruned.
const minTokenPrune = 1024

// New returns a Simulator with no meetings.
func New(cfg Config) (*Simulator, error) {
	if cfg.TokenLifetime < 0 {
		return nil, fmt.Errorf("meetingsim: Config.TokenLifetime must not be negative, got %v", cfg.TokenLifetime)
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if !cfg.Mode.valid() {
		return nil, fmt.Errorf("meetingsim: Config.Mode must be ModeLenient or ModeStrict, got %d", int(cfg.Mode))
	}
	if !cfg.TokenMode.valid() {
		return nil, fmt.Errorf("meetingsim: Config.TokenMode must be TokenModeMany or TokenModeOneLive, got %d", int(cfg.TokenMode))
	}
	if err := cfg.Faults.validate("Config.Faults"); err != nil {
		return nil, fmt.Errorf("meetingsim: %w", err)
	}
	if cfg.MaxRecords < 0 {
		return nil, fmt.Errorf("meetingsim: Config.MaxRecords must not be negative, got %d", cfg.MaxRecords)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Simulator{
		tokenLifetime: cfg.TokenLifetime,
		now:           cfg.Now,
		maxRecords:    cfg.MaxRecords,
		rng:           rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		mode:          cfg.Mode,
		tokenMode:     cfg.TokenMode,
		faults:        cfg.Faults.clone(),
		meetings:      map[string]*meeting{},
		tokens:        map[string]tokenGrant{},
		confTokens:    map[string]map[string]struct{}{},
		tokenPruneAt:  minTokenPrune,
	}
	s.handler = s.newHandler()
	return s, nil
}

// Handler returns the HTTP handler of the vendor API and, under /_sim/, of
// the admin API.
func (s *Simulator) Handler() http.Handler { return s.handler }

// AddMeeting adds a meeting. Duplicate participant IDs count once.
func (s *Simulator) AddMeeting(m Meeting) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("add meeting: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.meetings[m.ID]; ok {
		return fmt.Errorf("add meeting %s: %w", m.ID, ErrMeetingExists)
	}
	mt := &meeting{id: m.ID, password: m.HostPassword, state: m.State, online: map[string]struct{}{}}
	for _, p := range m.Participants {
		mt.online[p] = struct{}{}
	}
	s.meetings[m.ID] = mt
	return nil
}

// SetMeetingState changes a meeting's state. Ending a meeting does not clear
// its online set, so a test can check that calls on an ended meeting
// removed nobody.
func (s *Simulator) SetMeetingState(id string, st MeetingState) error {
	if !st.valid() {
		return fmt.Errorf("set state of meeting %s: state must be StateRunning, StateNotStarted or StateEnded, got %d", id, int(st))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meetings[id]
	if !ok {
		return fmt.Errorf("set state of meeting %s: %w", id, ErrMeetingNotFound)
	}
	m.state = st
	return nil
}

// Join puts participants online in a meeting, whatever its state; a
// participant who was hung up can rejoin this way.
func (s *Simulator) Join(conferenceID string, participantIDs ...string) error {
	if slices.Contains(participantIDs, "") {
		return fmt.Errorf("join meeting %s: participant IDs must not be empty", conferenceID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meetings[conferenceID]
	if !ok {
		return fmt.Errorf("join meeting %s: %w", conferenceID, ErrMeetingNotFound)
	}
	for _, p := range participantIDs {
		m.online[p] = struct{}{}
	}
	return nil
}

// Online returns the IDs online in a meeting, sorted; nil for an unknown
// meeting.
func (s *Simulator) Online(conferenceID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meetings[conferenceID]
	if !ok {
		return nil
	}
	return m.onlineIDs()
}

// Meetings summarises every meeting, sorted by ID.
func (s *Simulator) Meetings() []MeetingSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MeetingSummary, 0, len(s.meetings))
	for _, m := range s.meetings {
		out = append(out, MeetingSummary{ID: m.id, State: m.state, Online: len(m.online)})
	}
	slices.SortFunc(out, func(a, b MeetingSummary) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// SetFaults replaces the injected faults. Values out of range behave as the
// nearest valid value; call f.Validate first to catch mistakes.
func (s *Simulator) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f.clone()
}

// Faults returns a copy of the injected faults.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.clone()
}

// SetDown switches the outage on or off, leaving the other faults as they
// are.
func (s *Simulator) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Down = down
}

// SetMode switches between ModeLenient and ModeStrict. An invalid mode is
// ignored.
func (s *Simulator) SetMode(m Mode) {
	if !m.valid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// Mode returns the current mode.
func (s *Simulator) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// RejectAsMalformed makes the simulated vendor refuse the given participant
// IDs as bad parameters: any hang-up call that names one of them is
// rejected as a whole with 400 CodeParamEmpty and removes nobody, as the
// vendor does when one ID in a bulk call is malformed. Calling it with no
// IDs clears the list.
func (s *Simulator) RejectAsMalformed(participantIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(participantIDs) == 0 {
		s.malformed = nil
		return
	}
	if s.malformed == nil {
		s.malformed = make(map[string]bool, len(participantIDs))
	}
	for _, id := range participantIDs {
		s.malformed[id] = true
	}
}
