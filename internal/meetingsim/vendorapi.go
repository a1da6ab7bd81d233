package meetingsim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths of the simulated vendor API.
const (
	PathToken        = "/v1/mmc/control/conferences/token"
	PathHangUp       = "/v1/mmc/control/conferences/participants/delete"
	PathRealTimeInfo = "/v1/mmc/control/conferences/realTimeInfo"
)

// Headers of the vendor API.
const (
	HeaderRequestID     = "X-Request-Id"
	HeaderAuthorization = "X-Conference-Authorization"
	HeaderPassword      = "X-Password"
	HeaderLoginType     = "X-Login-Type"
)

// maxBodyBytes caps the hang-up body the simulator reads.
const maxBodyBytes = 1 << 20

// Fault names in Call.Fault.
const (
	faultOutage      = "outage"
	faultDropped     = "dropped"
	faultFlowControl = "flow_control"
	faultError       = "error"
	faultCanceled    = "canceled"
)

// newHandler builds the handler behind Handler: the admin API under
// AdminPrefix, the vendor API everywhere else. Every answer carries an
// X-Request-Id.
func (s *Simulator) newHandler() http.Handler {
	admin := http.NewServeMux()
	s.registerAdmin(admin)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, AdminPrefix) {
			w.Header().Set(HeaderRequestID, newRequestID())
			admin.ServeHTTP(w, r)
			return
		}
		s.serveVendor(w, r)
	})
}

// hangUpRequest is a hang-up call as received.
type hangUpRequest struct {
	call    Call      // Time, ConferenceID, ParticipantIDs and RequestID set
	token   string    // decoded control token, "" if none
	bodyErr *apiError // the body's problem, nil if it holds IDs
}

// serveVendor answers every path outside /_sim/: it applies the injected
// outage and latency, then flow control and errors to hang-ups, then the
// simulated vendor's own logic.
func (s *Simulator) serveVendor(w http.ResponseWriter, r *http.Request) {
	requestID := newRequestID()
	w.Header().Set(HeaderRequestID, requestID)
	now := s.now()

	var hu *hangUpRequest
	var route func(http.ResponseWriter, *http.Request, string)
	switch {
	case r.URL.Path == PathToken && r.Method == http.MethodGet:
		route = s.serveToken
	case r.URL.Path == PathRealTimeInfo && r.Method == http.MethodGet:
		route = s.serveRealTimeInfo
	case r.URL.Path == PathHangUp && r.Method == http.MethodPost:
		hu = readHangUp(w, r, requestID, now)
	default:
		route = func(w http.ResponseWriter, _ *http.Request, requestID string) {
			newAPIError(http.StatusNotFound, CodeAPINotFound).write(w, requestID)
		}
	}

	s.mu.Lock()
	plan := s.faults.plan(s.rng, now)
	s.mu.Unlock()

	if plan.down {
		fault, status := faultOutage, http.StatusServiceUnavailable
		if plan.drop {
			fault, status = faultDropped, 0
		}
		s.recordInjected(hu, status, CodeServiceError, fault)
		if plan.drop {
			dropConnection(w)
			return
		}
		newAPIError(http.StatusServiceUnavailable, CodeServiceError).write(w, requestID)
		return
	}
	if err := sleep(r.Context(), plan.latency); err != nil {
		// The client is gone: nothing to answer, nothing done.
		s.recordInjected(hu, 0, "", faultCanceled)
		return
	}
	if hu == nil {
		route(w, r, requestID)
		return
	}
	if plan.flowControl {
		s.recordInjected(hu, http.StatusTooManyRequests, CodeFlowControl, faultFlowControl)
		if plan.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(plan.retryAfter)))
		}
		newAPIError(http.StatusTooManyRequests, CodeFlowControl).write(w, requestID)
		return
	}
	if plan.err != nil {
		s.recordInjected(hu, plan.err.Status, plan.err.Code, faultError)
		plan.err.write(w, requestID)
		return
	}
	if e := s.hangUp(hu); e != nil {
		e.write(w, requestID)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// readHangUp reads a hang-up request. A body it cannot decode is kept as
// bodyErr, to be answered after the checks that come first.
func readHangUp(w http.ResponseWriter, r *http.Request, requestID string, now time.Time) *hangUpRequest {
	hu := &hangUpRequest{
		call: Call{
			Time:         now,
			ConferenceID: r.URL.Query().Get("conferenceID"),
			RequestID:    requestID,
			Caller:       r.Header.Get(HeaderCaller),
		},
		token: parseAuthorization(r.Header.Get(HeaderAuthorization)),
	}
	body, err := readBody(w, r)
	if err != nil {
		hu.bodyErr = newAPIError(http.StatusBadRequest, CodeJSONError)
		return hu
	}
	hu.call.ParticipantIDs, hu.bodyErr = decodeHangUpBody(body)
	return hu
}

// readBody reads at most maxBodyBytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	return buf.Bytes(), err
}

// decodeHangUpBody decodes {"bulkHangUpParticipants": [...]}. It returns
// the IDs it found, and the vendor's error when the body is empty, not such
// JSON, or lists no ID.
func decodeHangUpBody(body []byte) ([]string, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newAPIError(http.StatusBadRequest, CodeEmptyBody)
	}
	var req struct {
		BulkHangUpParticipants []string `json:"bulkHangUpParticipants"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, newAPIError(http.StatusBadRequest, CodeJSONError)
	}
	if len(req.BulkHangUpParticipants) == 0 {
		return nil, newAPIError(http.StatusBadRequest, CodeParamEmpty)
	}
	return req.BulkHangUpParticipants, nil
}

// parseAuthorization returns the token of an X-Conference-Authorization
// header: raw, or "Basic " and the token in base64. It returns "" for an
// empty header or bad base64.
func parseAuthorization(h string) string {
	h = strings.TrimLeft(h, " \t")
	const basic = "Basic "
	if len(h) >= len(basic) && strings.EqualFold(h[:len(basic)], basic) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(basic):]))
		if err != nil {
			return ""
		}
		return string(b)
	}
	return strings.TrimSpace(h)
}

// sleep waits d, or until ctx is done. Without latency it never fails: a
// call the client gave up on is still handled, as a real server would.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a writer that cannot hijack: abort the response, which
		// the server turns into a reset stream or closed connection.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// recordInjected records a hang-up call answered by an injected fault; it
// does nothing for other calls.
func (s *Simulator) recordInjected(hu *hangUpRequest, status int, code, fault string) {
	if hu == nil {
		return
	}
	c := hu.call
	c.Status, c.Code, c.Injected, c.Fault = status, code, true, fault
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordCallLocked(c, nil)
}

// hangUp runs the vendor's logic for a hang-up call and records it. It
// returns nil on success.
func (s *Simulator) hangUp(hu *hangUpRequest) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed, e := s.hangUpLocked(hu)
	c := hu.call
	c.Status = http.StatusOK
	if e != nil {
		c.Status, c.Code = e.Status, e.Code
	}
	s.recordCallLocked(c, removed)
	return e
}

// hangUpLocked checks the call in the vendor's order and removes the
// participants. s.mu is held.
func (s *Simulator) hangUpLocked(hu *hangUpRequest) ([]string, *apiError) {
	cid := hu.call.ConferenceID
	if cid == "" {
		return nil, newAPIError(http.StatusBadRequest, CodeParamError)
	}
	grant, ok := s.validTokenLocked(hu.token, hu.call.Time)
	if !ok {
		return nil, newAPIError(http.StatusUnauthorized, CodeTokenInvalid)
	}
	if hu.bodyErr != nil {
		return nil, hu.bodyErr
	}
	m, ok := s.meetings[cid]
	if !ok {
		return nil, newAPIError(http.StatusBadRequest, CodeMeetingNotFound)
	}
	if grant.conferenceID != cid {
		return nil, newAPIError(http.StatusBadRequest, CodeAuthFailed)
	}
	if e := stateError(m.state); e != nil {
		return nil, e
	}
	ids := hu.call.ParticipantIDs
	for _, id := range ids {
		if s.malformed[id] {
			return nil, newAPIError(http.StatusBadRequest, CodeParamEmpty)
		}
	}
	if s.mode == ModeStrict {
		for _, id := range ids {
			if _, online := m.online[id]; !online {
				return nil, newAPIError(http.StatusBadRequest, CodeParticipantNotFound)
			}
		}
	}
	var removed []string
	for _, id := range ids {
		if _, online := m.online[id]; online {
			delete(m.online, id)
			removed = append(removed, id)
		}
	}
	return removed, nil
}

// tokenResponse is the token API's answer. The misspelled gloablPublicIP is
// the vendor's own.
type tokenResponse struct {
	Data           tokenData `json:"data"`
	AddressToken   string    `json:"addressToken"`
	GloablPublicIP string    `json:"gloablPublicIP"`
}

type tokenData struct {
	Token               string `json:"token"`
	ExpireTime          int64  `json:"expireTime"`
	ConfTokenExpireTime int64  `json:"confTokenExpireTime"`
	Role                int    `json:"role"`
	TmpWsToken          string `json:"tmpWsToken"`
	WsURL               string `json:"wsURL"`
	UserID              string `json:"userID"`
	OrgID               string `json:"orgID"`
	VmrCurrentConfID    string `json:"vmrCurrentConfID"`
}

// serveToken answers GET PathToken: a new token for the host password, or
// the old token kept alive. In TokenModeOneLive a new token ends the
// earlier ones of its meeting.
func (s *Simulator) serveToken(w http.ResponseWriter, r *http.Request, requestID string) {
	tok, exp, lifetime, e := s.token(r)
	if e != nil {
		e.write(w, requestID)
		return
	}
	cid := r.URL.Query().Get("conferenceID")
	writeJSON(w, http.StatusOK, tokenResponse{
		Data: tokenData{
			Token:               tok,
			ExpireTime:          exp.UnixMilli(),
			ConfTokenExpireTime: int64(lifetime / time.Second),
			Role:                1,
			TmpWsToken:          randomHex(24),
			WsURL:               "wss://meetingsim.invalid/cms/open/websocket/confctl/increment/conn?confID=" + cid,
			UserID:              "host-" + cid,
			OrgID:               "meetingsim",
			VmrCurrentConfID:    cid,
		},
		AddressToken:   randomHex(16),
		GloablPublicIP: remoteIP(r),
	})
}

// token runs the token API's logic and returns the token, its expiry and
// the lifetime it was given.
func (s *Simulator) token(r *http.Request) (string, time.Time, time.Duration, *apiError) {
	cid := r.URL.Query().Get("conferenceID")
	password := r.Header.Get(HeaderPassword)
	old := parseAuthorization(r.Header.Get(HeaderAuthorization))
	oldSent := r.Header.Get(HeaderAuthorization) != ""

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	if cid != "" {
		if s.stats.TokenCallsByConference == nil {
			s.stats.TokenCallsByConference = map[string]int{}
		}
		s.stats.TokenCallsByConference[cid]++
	}
	if cid == "" || r.Header.Get(HeaderLoginType) != "1" || (password == "" && !oldSent) {
		return "", time.Time{}, 0, newAPIError(http.StatusBadRequest, CodeParamError)
	}
	now := s.now()
	m := s.meetings[cid]
	grant, valid := s.validTokenLocked(old, now)
	keepAlive := valid && grant.conferenceID == cid
	switch {
	case password != "":
		if m == nil || subtle.ConstantTimeCompare([]byte(password), []byte(m.password)) != 1 {
			return "", time.Time{}, 0, newAPIError(http.StatusBadRequest, CodeAuthFailed)
		}
	case !valid:
		// Keep-alive alone, of a token that is unknown or expired.
		return "", time.Time{}, 0, newAPIError(http.StatusUnauthorized, CodeTokenInvalid)
	case !keepAlive || m == nil:
		// Keep-alive alone, of a token of another meeting.
		return "", time.Time{}, 0, newAPIError(http.StatusBadRequest, CodeAuthFailed)
	}
	if e := stateError(m.state); e != nil {
		return "", time.Time{}, 0, e
	}
	if keepAlive {
		// The same token comes back: in TokenModeOneLive too, nothing ends.
		grant.expires = now.Add(s.tokenLifetime)
		s.tokens[old] = grant
		s.stats.TokensRenewed++
		return old, grant.expires, s.tokenLifetime, nil
	}
	tok, exp := s.issueTokenLocked(cid, now)
	return tok, exp, s.tokenLifetime, nil
}

// remoteIP is the client's IP address as the server sees it.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// realTimeInfo is the realTimeInfo API's answer.
type realTimeInfo struct {
	ConfInfo     realTimeConfInfo      `json:"confInfo"`
	Attendees    []realTimeParticipant `json:"attendees"`
	Participants []realTimeParticipant `json:"participants"`
}

type realTimeConfInfo struct {
	ChairID string   `json:"chairID"`
	CoHosts []string `json:"coHosts"`
}

// realTimeParticipant is an online site. State 0 is "in the meeting";
// mute, hand and video are 0 or 1.
type realTimeParticipant struct {
	PID   string `json:"pid"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
	State int    `json:"state"`
	Mute  int    `json:"mute"`
	Hand  int    `json:"hand"`
	Video int    `json:"video"`
}

// serveRealTimeInfo answers GET PathRealTimeInfo with the online
// participants.
func (s *Simulator) serveRealTimeInfo(w http.ResponseWriter, r *http.Request, requestID string) {
	online, e := s.realTimeInfo(r)
	if e != nil {
		e.write(w, requestID)
		return
	}
	info := realTimeInfo{
		ConfInfo:     realTimeConfInfo{CoHosts: []string{}},
		Attendees:    []realTimeParticipant{},
		Participants: make([]realTimeParticipant, 0, len(online)),
	}
	for _, id := range online {
		info.Participants = append(info.Participants, realTimeParticipant{PID: id, Name: id, Video: 1})
	}
	writeJSON(w, http.StatusOK, info)
}

// realTimeInfo checks a realTimeInfo call and returns who is online.
func (s *Simulator) realTimeInfo(r *http.Request) ([]string, *apiError) {
	cid := r.URL.Query().Get("conferenceID")
	tok := parseAuthorization(r.Header.Get(HeaderAuthorization))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.RealTimeInfoRequests++
	if cid == "" {
		return nil, newAPIError(http.StatusBadRequest, CodeParamError)
	}
	grant, ok := s.validTokenLocked(tok, s.now())
	if !ok {
		return nil, newAPIError(http.StatusUnauthorized, CodeTokenInvalid)
	}
	m, ok := s.meetings[cid]
	if !ok {
		return nil, newAPIError(http.StatusBadRequest, CodeMeetingNotFound)
	}
	if grant.conferenceID != cid {
		return nil, newAPIError(http.StatusBadRequest, CodeAuthFailed)
	}
	if e := stateError(m.state); e != nil {
		return nil, e
	}
	return m.onlineIDs(), nil
}
