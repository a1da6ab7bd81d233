package meetingclient

import (
	"context"
	"net/http"
)

// MeetingInfo is who is in a meeting right now.
type MeetingInfo struct {
	// Participants are the online participants: in the meeting, being
	// called, or joining. Someone who left is absent.
	Participants []Participant
	// RequestID is the X-Request-Id header of the response.
	RequestID string
}

// Participant is one online participant ("site") of a meeting.
type Participant struct {
	// PID identifies the participant; it is what HangUp takes.
	PID string `json:"pid"`
	// Name is the participant's name or nickname.
	Name string `json:"name"`
	// Phone is the registered number of the participant's device.
	Phone string `json:"phone"`
	// State is 0 in the meeting, 1 being called, 2 joining.
	State int `json:"state"`
	// Mute is 0 microphone on, 1 microphone off.
	Mute int `json:"mute"`
	// Hand is 0 hand down, 1 hand raised.
	Hand int `json:"hand"`
	// Video is 0 audio only, 1 video.
	Video int `json:"video"`
}

// Participant states.
const (
	StateInMeeting = 0
	StateCalling   = 1
	StateJoining   = 2
)

// RealTimeInfo lists the online participants of the meeting conferenceID,
// using the meeting control token.
//
// On failure the error is an [*APIError] (see [ClassOf]), or, when ctx ends
// first, an error wrapping ctx.Err().
func (c *Client) RealTimeInfo(ctx context.Context, conferenceID, token string) (*MeetingInfo, error) {
	if err := checkConference(OpRealTimeInfo, conferenceID); err != nil {
		return nil, err
	}
	if err := checkToken(OpRealTimeInfo, token); err != nil {
		return nil, err
	}
	cl := call{
		op:       OpRealTimeInfo,
		method:   http.MethodGet,
		path:     pathRealTimeInfo,
		conf:     conferenceID,
		header:   http.Header{headerAuthorization: {token}},
		secrets:  []string{token},
		needBody: true,
	}
	res, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var body struct {
		Participants []Participant `json:"participants"`
	}
	if err := decodeSuccess(cl, res, &body); err != nil {
		return nil, err
	}
	return &MeetingInfo{Participants: body.Participants, RequestID: res.requestID}, nil
}
