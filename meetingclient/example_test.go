package meetingclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	mc "github.com/hangup-dev/hangup/meetingclient"
)

func ExampleDecodeError() {
	header := http.Header{"X-Request-Id": {"bd6c09db2be3f986c2382c01deb240e6"}}
	body := []byte(`{"error_code":"MMC.111072008","error_msg":"PARTICIPANT_NOT_FOUND"}`)

	err := mc.DecodeError(mc.OpHangUp, http.StatusBadRequest, header, body)
	fmt.Println(err)
	fmt.Println(err.Class, err.Class.Retryable())
	// Output:
	// hang up: HTTP 400 MMC.111072008 PARTICIPANT_NOT_FOUND (request bd6c09db2be3f986c2382c01deb240e6)
	// participant_gone false
}

func ExampleClassOf() {
	err := fmt.Errorf("hang up conference 914083136: %w",
		mc.DecodeError(mc.OpHangUp, http.StatusTooManyRequests, http.Header{"Retry-After": {"5"}}, nil))

	switch class := mc.ClassOf(err); {
	case class == mc.ClassFlowControl:
		var ae *mc.APIError
		errors.As(err, &ae)
		fmt.Println("slow down for", ae.RetryAfter)
	case class.Retryable():
		fmt.Println("retry")
	default:
		fmt.Println("give up:", class)
	}
	// Output: slow down for 5s
}

func ExampleClient_HangUp() {
	// A stand-in for the vendor's API.
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "bd6c09db2be3f986c2382c01deb240e6")
		if r.URL.Query().Get("conferenceID") != "914083136" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error_code":"MMC.111070005","error_msg":"CONF_NOT_EXIST"}`)
		}
	}))
	defer vendor.Close()

	client, err := mc.New(mc.Config{BaseURL: vendor.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	ctx := context.Background()
	token := "stbaf8fa2ea8a1b0e3ab2e007a85a75f88c55d5f6d5c1912dfb"
	resp, err := client.HangUp(ctx, "914083136", token, []string{"ba9acb1e216d11eabc5165c2b91ad427"})
	fmt.Println(resp.Status, err)

	_, err = client.HangUp(ctx, "111111111", token, []string{"ba9acb1e216d11eabc5165c2b91ad427"})
	fmt.Println(mc.ClassOf(err), err)
	// Output:
	// 200 <nil>
	// meeting_gone hang up: HTTP 400 MMC.111070005 CONF_NOT_EXIST (request bd6c09db2be3f986c2382c01deb240e6)
}
