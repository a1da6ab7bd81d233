package meetingsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// Error codes the simulator answers with. The MMC codes and their meanings
// come from API_NOTES.md; the messages are the simulator's own.
const (
	// CodeTokenInvalid (HTTP 401): the control token is missing, unknown or
	// expired.
	CodeTokenInvalid = "USG.000000004"
	// CodeParamError: a mandatory parameter (query or header) is missing or
	// malformed.
	CodeParamError = "MMC.111070001"
	// CodeServiceError: server-side failure; the default code of injected
	// errors and of outages.
	CodeServiceError = "MMC.111070003"
	// CodeMeetingNotFound: the meeting does not exist.
	CodeMeetingNotFound = "MMC.111070005"
	// CodeParamEmpty: bulkHangUpParticipants is missing or empty.
	CodeParamEmpty = "MMC.111071061"
	// CodeJSONError: the body is not valid JSON of the expected shape.
	CodeJSONError = "MMC.111071062"
	// CodeMeetingEnded: the meeting has ended.
	CodeMeetingEnded = "MMC.111071072"
	// CodeMeetingNotStarted: the meeting has not started yet.
	CodeMeetingNotStarted = "MMC.111072005"
	// CodeParticipantNotFound: in ModeStrict, at least one participant is
	// not online; the whole call is rejected.
	CodeParticipantNotFound = "MMC.111072008"
	// CodeEmptyBody: the request has no body.
	CodeEmptyBody = "MMC.111072057"
	// CodeAuthFailed: wrong meeting ID or host password, or a token of
	// another meeting.
	CodeAuthFailed = "MMC.111072065"
	// CodeFlowControl (HTTP 429): server flow control.
	CodeFlowControl = "MMC.100000429"
	// CodeAPINotFound (HTTP 404): no API at this method and path; the API
	// gateway's code.
	CodeAPINotFound = "APIGW.0101"
)

// messages maps a code to the error_msg the simulator sends with it.
var messages = map[string]string{
	CodeTokenInvalid:        "TOKEN_INVALID_OR_EXPIRED",
	CodeParamError:          "PARAM_ERROR",
	CodeServiceError:        "SERVICE_ERROR",
	CodeMeetingNotFound:     "CONF_NOT_EXIST",
	CodeParamEmpty:          "BULK_HANG_UP_PARTICIPANTS_EMPTY",
	CodeJSONError:           "JSON_PARSE_ERROR",
	CodeMeetingEnded:        "CONF_ENDED",
	CodeMeetingNotStarted:   "CONF_NOT_STARTED",
	CodeParticipantNotFound: "PARTICIPANT_NOT_FOUND",
	CodeEmptyBody:           "REQUEST_BODY_EMPTY",
	CodeAuthFailed:          "CONF_NOT_FOUND_OR_AUTH_FAILED",
	CodeFlowControl:         "SERVER_FLOW_CONTROL",
	CodeAPINotFound:         "The API does not exist or has not been published in the environment",
}

// apiError is an error answer of the vendor API: an HTTP status and the
// vendor's error body.
type apiError struct {
	Status  int
	Code    string
	Message string
}

// newAPIError returns the error for code with its usual message.
func newAPIError(status int, code string) *apiError {
	return &apiError{Status: status, Code: code, Message: messages[code]}
}

// errorBody is the vendor's error JSON.
type errorBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	RequestID string `json:"request_id,omitempty"`
}

// write sends e with requestID in the body (the header is already set).
func (e *apiError) write(w http.ResponseWriter, requestID string) {
	writeJSON(w, e.Status, errorBody{ErrorCode: e.Code, ErrorMsg: e.Message, RequestID: requestID})
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types reach here; they always marshal.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// randomHex returns n random bytes as 2n lowercase hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}

// newRequestID returns a fresh X-Request-Id: 32 lowercase hex digits.
func newRequestID() string { return randomHex(16) }

// newToken returns a fresh control token: "stb" and 48 lowercase hex digits.
func newToken() string { return "stb" + randomHex(24) }
