package schemas_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hangup-dev/hangup/schemas"
)

func ExampleDecodeRequest() {
	subject := "meeting.disconnect.requests.914083136"
	payload := []byte(`{
		"requestID": "req-42",
		"conferenceID": "914083136",
		"participantIDs": ["a1", "b2", "a1"],
		"expiresAt": "2025-06-01T14:30:00+02:00"
	}`)
	req, err := schemas.DecodeRequest(subject, payload, schemas.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.RequestID, req.ConferenceID, req.ParticipantIDs, req.ExpiresAt)

	bad := []byte(`{"requestID": "req-43", "conferenceID": "914083136", "participantIDs": ["a1", "John Smith"]}`)
	_, err = schemas.DecodeRequest(subject, bad, schemas.DecodeOptions{})
	var verr *schemas.ValidationError
	if errors.As(err, &verr) {
		fmt.Println(verr.Field)
		fmt.Println(err)
	}
	// Output:
	// req-42 914083136 [a1 b2] 2025-06-01 12:30:00 +0000 UTC
	// participantIDs[1]
	// participantIDs[1]: contains a space at character 5; a participant ID is printable ASCII without spaces
}

func ExampleConferenceIDFromSubject() {
	fmt.Println(schemas.ConferenceIDFromSubject("meeting.disconnect.requests.914083136", schemas.DefaultRequestSubjectPrefix))
	fmt.Println(schemas.ConferenceIDFromSubject("meeting.disconnect.requests.914.083", schemas.DefaultRequestSubjectPrefix))
	// Output:
	// 914083136 true
	//  false
}

func ExampleValidateToken() {
	fmt.Println(schemas.ValidateToken("stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"))
	fmt.Println(schemas.ValidateToken("Basic c3RiYWY4ZmEy"))
	fmt.Println(schemas.ValidateToken("stbaf8fa2ea8\r\n"))
	// Output:
	// <nil>
	// <nil>
	// X-Conference-Authorization: has a control character at byte 13; a control token is printable ASCII
}

func ExampleSchema() {
	b, err := schemas.Schema("result")
	if err != nil {
		fmt.Println(err)
		return
	}
	var doc struct {
		ID    string `json:"$id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(doc.Title)
	fmt.Println(doc.ID)
	// Output:
	// Disconnect result
	// https://hangup.dev/schemas/v1/result.schema.json
}
