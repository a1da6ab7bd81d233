package meetingsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// AdminPrefix is the path prefix of the admin API. Admin calls are never
// subject to injected faults, and their answers never carry host passwords
// or tokens.
const AdminPrefix = "/_sim/"

// adminState is the answer of GET /_sim/state.
type adminState struct {
	Mode     Mode             `json:"mode"`
	Tokens   tokenConfig      `json:"tokens"`
	Faults   Faults           `json:"faults"`
	Meetings []MeetingSummary `json:"meetings"`
	Stats    Stats            `json:"stats"`
}

// meetingDetail is the answer of GET /_sim/meetings/{id}.
type meetingDetail struct {
	MeetingSummary
	Participants []string `json:"participants"`
}

// registerAdmin adds the admin endpoints to mux.
func (s *Simulator) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/state", s.adminState)
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT /_sim/faults", s.adminPutFaults)
	mux.HandleFunc("GET /_sim/mode", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, modeBody{Mode: s.Mode()})
	})
	mux.HandleFunc("PUT /_sim/mode", s.adminPutMode)
	mux.HandleFunc("POST /_sim/meetings", s.adminAddMeeting)
	mux.HandleFunc("GET /_sim/meetings/{id}", s.adminGetMeeting)
	mux.HandleFunc("PUT /_sim/meetings/{id}/state", s.adminSetMeetingState)
	mux.HandleFunc("POST /_sim/meetings/{id}/join", s.adminJoin)
	mux.HandleFunc("GET /_sim/tokens/config", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		c := s.tokenConfigLocked()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, c)
	})
	// Both fields of the body are optional, so this is a partial update;
	// POST and PUT do the same.
	mux.HandleFunc("POST /_sim/tokens/config", s.adminSetTokenConfig)
	mux.HandleFunc("PUT /_sim/tokens/config", s.adminSetTokenConfig)
	mux.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		n := s.expireTokensLocked()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"expired": n})
	})
	mux.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Calls())
	})
	mux.HandleFunc("GET /_sim/disconnects", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Disconnects())
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc(AdminPrefix, func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, fmt.Errorf("no admin endpoint %s %s", r.Method, r.URL.Path))
	})
}

func (s *Simulator) adminState(w http.ResponseWriter, _ *http.Request) {
	st := adminState{Meetings: s.Meetings(), Stats: s.Stats()}
	s.mu.Lock()
	st.Mode, st.Tokens, st.Faults = s.mode, s.tokenConfigLocked(), s.faults.clone()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (s *Simulator) adminPutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeRequest(w, r, &f); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode faults: %w", err))
		return
	}
	if err := f.Validate(); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

// modeBody is the body of GET and PUT /_sim/mode.
type modeBody struct {
	Mode Mode `json:"mode"`
}

func (s *Simulator) adminPutMode(w http.ResponseWriter, r *http.Request) {
	// A pointer, so that a body without "mode" is an error rather than
	// ModeLenient.
	var body struct {
		Mode *Mode `json:"mode"`
	}
	if err := decodeRequest(w, r, &body); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode mode: %w", err))
		return
	}
	if body.Mode == nil {
		adminError(w, http.StatusBadRequest, errors.New(`decode mode: "mode" is required`))
		return
	}
	s.SetMode(*body.Mode)
	writeJSON(w, http.StatusOK, modeBody{Mode: *body.Mode})
}

// tokenConfig is the answer of GET, PUT and POST /_sim/tokens/config, and
// the "tokens" of GET /_sim/state: {"lifetime":"30m0s","mode":"many"}.
type tokenConfig struct {
	Lifetime duration  `json:"lifetime"`
	Mode     TokenMode `json:"mode"`
}

// tokenConfigLocked returns the current token settings. s.mu is held.
func (s *Simulator) tokenConfigLocked() tokenConfig {
	return tokenConfig{Lifetime: duration(s.tokenLifetime), Mode: s.tokenMode}
}

// adminSetTokenConfig changes the token lifetime, the token mode, or both,
// and answers with the settings now in force. A field left out stays as it
// is; a bad field changes nothing.
func (s *Simulator) adminSetTokenConfig(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Lifetime *duration  `json:"lifetime"`
		Mode     *TokenMode `json:"mode"`
	}
	if err := decodeRequest(w, r, &body); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode token config: %w", err))
		return
	}
	if body.Lifetime != nil && *body.Lifetime <= 0 {
		adminError(w, http.StatusBadRequest,
			fmt.Errorf(`decode token config: "lifetime" must be positive, got %v`, time.Duration(*body.Lifetime)))
		return
	}
	s.mu.Lock()
	if body.Lifetime != nil {
		s.tokenLifetime = time.Duration(*body.Lifetime)
	}
	if body.Mode != nil {
		s.tokenMode = *body.Mode
	}
	c := s.tokenConfigLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, c)
}

func (s *Simulator) adminAddMeeting(w http.ResponseWriter, r *http.Request) {
	var m Meeting
	if err := decodeRequest(w, r, &m); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode meeting: %w", err))
		return
	}
	if err := s.AddMeeting(m); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrMeetingExists) {
			status = http.StatusConflict
		}
		adminError(w, status, err)
		return
	}
	s.writeMeeting(w, http.StatusCreated, m.ID, false)
}

func (s *Simulator) adminGetMeeting(w http.ResponseWriter, r *http.Request) {
	s.writeMeeting(w, http.StatusOK, r.PathValue("id"), true)
}

func (s *Simulator) adminSetMeetingState(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State *MeetingState `json:"state"`
	}
	if err := decodeRequest(w, r, &body); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode state: %w", err))
		return
	}
	if body.State == nil {
		adminError(w, http.StatusBadRequest, errors.New(`decode state: "state" is required`))
		return
	}
	id := r.PathValue("id")
	if err := s.SetMeetingState(id, *body.State); err != nil {
		adminError(w, statusOf(err), err)
		return
	}
	s.writeMeeting(w, http.StatusOK, id, false)
}

func (s *Simulator) adminJoin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Participants []string `json:"participants"`
	}
	if err := decodeRequest(w, r, &body); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("decode join: %w", err))
		return
	}
	id := r.PathValue("id")
	if err := s.Join(id, body.Participants...); err != nil {
		adminError(w, statusOf(err), err)
		return
	}
	s.writeMeeting(w, http.StatusOK, id, false)
}

// writeMeeting answers with the summary of meeting id, and its online
// participants if detail is set.
func (s *Simulator) writeMeeting(w http.ResponseWriter, status int, id string, detail bool) {
	s.mu.Lock()
	m, ok := s.meetings[id]
	var d meetingDetail
	if ok {
		d.MeetingSummary = MeetingSummary{ID: m.id, State: m.state, Online: len(m.online)}
		if detail {
			d.Participants = m.onlineIDs()
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		adminError(w, http.StatusNotFound, fmt.Errorf("meeting %s: %w", id, ErrMeetingNotFound))
	case detail:
		writeJSON(w, status, d)
	default:
		writeJSON(w, status, d.MeetingSummary)
	}
}

// statusOf maps a Simulator error to an admin HTTP status.
func statusOf(err error) int {
	if errors.Is(err, ErrMeetingNotFound) {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// adminError answers {"error": "..."}.
func adminError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// decodeRequest decodes an admin request body of at most maxBodyBytes into
// v, strictly.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes exactly one JSON value from b into v, rejecting
// unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
