package meetingclient

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// ConfToken is a meeting control token. Its String and GoString methods hide
// the token, so printing a ConfToken does not leak it.
type ConfToken struct {
	// Token is the meeting control token, sent as X-Conference-Authorization.
	Token string
	// ExpireTime is when the token expires (the response's data.expireTime,
	// unix milliseconds); zero when the response had none.
	ExpireTime time.Time
	// Lifetime is how long a token lives (data.confTokenExpireTime, seconds);
	// zero when the response had none. The vendor documents 30 minutes.
	Lifetime time.Duration
	// Role is the role the token grants (data.role); 1 for the host.
	Role int
	// RequestID is the X-Request-Id header of the response.
	RequestID string
}

// String describes t without its token.
func (t ConfToken) String() string {
	return fmt.Sprintf("ConfToken{Token: %s, ExpireTime: %s, Lifetime: %s, Role: %d, RequestID: %q}",
		hiddenToken(t.Token), t.ExpireTime.Format(time.RFC3339), t.Lifetime, t.Role, t.RequestID)
}

// GoString describes t without its token, for %#v.
func (t ConfToken) GoString() string { return "meetingclient." + t.String() }

func hiddenToken(token string) string {
	if token == "" {
		return `""`
	}
	return redacted
}

// TokenOption is a per-call setting of CreateConfToken.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	oldToken string
}

// WithOldToken sends the token obtained before, to keep it alive: the vendor
// extends it, or, when it has expired, issues a new one against the host
// password.
func WithOldToken(token string) TokenOption {
	return func(o *tokenOptions) { o.oldToken = token }
}

// tokenResponse is the body of a successful create token call. Fields the
// worker does not use (tmpWsToken, wsURL, userID, orgID, vmrCurrentConfID,
// addressToken and the vendor's misspelt gloablPublicIP) are ignored.
type tokenResponse struct {
	Data struct {
		Token               string `json:"token"`
		ExpireTime          int64  `json:"expireTime"`          // unix ms
		ConfTokenExpireTime int64  `json:"confTokenExpireTime"` // seconds
		Role                int    `json:"role"`
	} `json:"data"`
}

// CreateConfToken obtains a meeting control token for the running meeting
// conferenceID with its host password. The meeting must be running.
//
// On failure the error is an [*APIError] (see [ClassOf]), or, when ctx ends
// first, an error wrapping ctx.Err(). A wrong meeting ID or host password
// (MMC.111072065) is ClassPermanent here.
func (c *Client) CreateConfToken(ctx context.Context, conferenceID, hostPassword string, opts ...TokenOption) (*ConfToken, error) {
	var o tokenOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := checkConference(OpCreateToken, conferenceID); err != nil {
		return nil, err
	}
	if hostPassword == "" {
		return nil, errorf(OpCreateToken, ClassPermanent, "empty host password")
	}
	if !validHeaderValue(hostPassword) {
		return nil, errorf(OpCreateToken, ClassPermanent, "host password holds characters not allowed in a header")
	}
	header := http.Header{
		headerPassword:  {hostPassword},
		headerLoginType: {loginTypePassword},
	}
	if o.oldToken != "" {
		if err := checkToken(OpCreateToken, o.oldToken); err != nil {
			return nil, err
		}
		header[headerAuthorization] = []string{o.oldToken}
	}

	cl := call{
		op:       OpCreateToken,
		method:   http.MethodGet,
		path:     pathToken,
		conf:     conferenceID,
		header:   header,
		secrets:  []string{hostPassword, o.oldToken},
		needBody: true,
	}
	res, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var body tokenResponse
	if err := decodeSuccess(cl, res, &body); err != nil {
		return nil, err
	}
	if body.Data.Token == "" {
		return nil, &APIError{Op: cl.op, Status: res.status, Message: "response has no token", RequestID: res.requestID, Class: ClassRetryable}
	}
	t := &ConfToken{
		Token:     body.Data.Token,
		Role:      body.Data.Role,
		RequestID: res.requestID,
	}
	if ms := body.Data.ExpireTime; ms > 0 {
		t.ExpireTime = time.UnixMilli(ms)
	}
	if s := body.Data.ConfTokenExpireTime; s > 0 && s <= int64(maxTokenLifetime/time.Second) {
		t.Lifetime = time.Duration(s) * time.Second
	}
	return t, nil
}

// maxTokenLifetime bounds ConfToken.Lifetime against nonsense values.
const maxTokenLifetime = 30 * 24 * time.Hour
