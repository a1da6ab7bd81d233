package meetingsim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

func Example() {
	sim, err := meetingsim.New(meetingsim.Config{Mode: meetingsim.ModeStrict})
	if err != nil {
		panic(err)
	}
	err = sim.AddMeeting(meetingsim.Meeting{
		ID:           "914083136",
		HostPassword: "host-secret",
		Participants: []string{"alice", "bob", "carol"},
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	token, err := sim.IssueToken("914083136")
	if err != nil {
		panic(err)
	}
	hangUp := func(body string) {
		req, _ := http.NewRequest(http.MethodPost,
			srv.URL+meetingsim.PathHangUp+"?conferenceID=914083136", strings.NewReader(body))
		req.Header.Set(meetingsim.HeaderAuthorization, token)
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		fmt.Println(res.StatusCode)
	}
	hangUp(`{"bulkHangUpParticipants":["bob","dave"]}`) // strict: dave is not online
	hangUp(`{"bulkHangUpParticipants":["bob"]}`)

	fmt.Println(sim.Online("914083136"))
	for _, d := range sim.Disconnects() {
		fmt.Println("disconnected", d.ParticipantID)
	}
	// Output:
	// 400
	// 200
	// [alice carol]
	// disconnected bob
}
