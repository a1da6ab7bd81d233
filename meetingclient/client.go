package meetingclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hangup-dev/hangup/internal/buildinfo"
)

// DefaultBaseURL is the vendor's endpoint in region cn-north-4. The endpoint
// of ap-southeast-1 is https://api-intl.meeting.huaweicloud.com.
const DefaultBaseURL = "https://api.meeting.huaweicloud.com"

// Defaults of Config.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxConnsPerHost = 64
)

// Paths of the control API, below Config.BaseURL.
const (
	pathHangUp       = "/v1/mmc/control/conferences/participants/delete"
	pathToken        = "/v1/mmc/control/conferences/token"
	pathRealTimeInfo = "/v1/mmc/control/conferences/realTimeInfo"
)

// Headers of the control API.
const (
	headerAuthorization = "X-Conference-Authorization"
	headerPassword      = "X-Password"
	headerLoginType     = "X-Login-Type"
	headerRequestID     = "X-Request-Id"

	// loginTypePassword is the X-Login-Type of a host password, the only
	// one the control API accepts.
	loginTypePassword = "1"
)

// Config configures a Client. The zero value is usable and talks to
// DefaultBaseURL.
type Config struct {
	// BaseURL is the scheme and host of the API, optionally with a path
	// prefix, e.g. "https://api-intl.meeting.huaweicloud.com". Plain http://
	// is allowed for a local simulator. It must not hold user info, a query
	// or a fragment. Defaults to DefaultBaseURL.
	BaseURL string
	// CAFile is a PEM file of CA certificates trusted in addition to the
	// system pool. It must be empty when Transport is set. Defaults to ""
	// (system pool only).
	CAFile string
	// Timeout bounds one call: one HTTP attempt, from dialing to reading the
	// body. Defaults to 10s.
	Timeout time.Duration
	// UserAgent is sent with every request. Defaults to buildinfo.UserAgent(),
	// "hangup/<version>".
	UserAgent string
	// MaxConnsPerHost caps the connections to the API host, idle or in use;
	// calls beyond it wait for a connection. Defaults to 64.
	MaxConnsPerHost int
	// Transport replaces the client's own transport, for tests. When it is
	// set CAFile must be empty and MaxConnsPerHost is not used. Defaults to
	// nil (a transport built from the other fields).
	Transport http.RoundTripper
	// TracePropagation sends the W3C traceparent and tracestate of the
	// span in each call's context to the API. The vendor is a third party,
	// so it is off unless asked for. Defaults to false.
	TracePropagation bool
}

// Client calls the control API. It is safe for concurrent use; create one and
// share it. Close releases its idle connections.
type Client struct {
	baseURL   url.URL // path prefix without trailing slash
	http      *http.Client
	timeout   time.Duration
	userAgent string
	propagate bool // Config.TracePropagation
}

// New validates cfg, fills in its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("meetingclient config: Timeout must not be negative, got %s", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.MaxConnsPerHost < 0:
		return nil, fmt.Errorf("meetingclient config: MaxConnsPerHost must not be negative, got %d", cfg.MaxConnsPerHost)
	case cfg.MaxConnsPerHost == 0:
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = buildinfo.UserAgent()
	}
	if !validHeaderValue(cfg.UserAgent) {
		return nil, errors.New("meetingclient config: UserAgent must not hold control characters")
	}

	rt := cfg.Transport
	if rt != nil {
		if cfg.CAFile != "" {
			return nil, errors.New("meetingclient config: CAFile must be empty when Transport is set")
		}
	} else {
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pool, err := loadCAFile(cfg.CAFile)
			if err != nil {
				return nil, err
			}
			tlsConfig.RootCAs = pool
		}
		rt = newTransport(tlsConfig, cfg.MaxConnsPerHost)
	}

	return &Client{
		baseURL: *base,
		http: &http.Client{
			Transport: rt,
			// Never follow redirects: the token and the host password travel
			// in custom headers, which net/http would forward to any host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		propagate: cfg.TracePropagation,
	}, nil
}

// parseBaseURL checks Config.BaseURL.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the input; BaseURL holds no secret once user
		// info is refused below, but the parse error may print it anyway.
		return nil, fmt.Errorf("meetingclient config: BaseURL must be a valid URL: %w", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("meetingclient config: BaseURL must use scheme https or http, got %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("meetingclient config: BaseURL must have a host")
	case u.User != nil:
		return nil, errors.New("meetingclient config: BaseURL must not hold user info")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("meetingclient config: BaseURL must not have a query")
	case u.Fragment != "":
		return nil, errors.New("meetingclient config: BaseURL must not have a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// loadCAFile returns the system pool plus the certificates in the PEM file.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("meetingclient config: CAFile: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("meetingclient config: CAFile %q must hold at least one PEM certificate", path)
	}
	return pool, nil
}

// newTransport returns the one pooled transport of a Client.
func newTransport(tlsConfig *tls.Config, maxConnsPerHost int) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			KeepAlive: 30 * time.Second, // the call's context bounds dialing
		}).DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxConnsPerHost,
		MaxIdleConnsPerHost:   maxConnsPerHost,
		MaxConnsPerHost:       maxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Close closes the client's idle connections. Calls may still be made after
// Close; they open new connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Response is the result of a successful HangUp.
type Response struct {
	// Status is the HTTP status, 200 on success.
	Status int
	// RequestID is the X-Request-Id header of the response.
	RequestID string
}

// HangUp disconnects the participants from the meeting conferenceID, using
// the meeting control token. The vendor applies the call as a whole: there is
// no per-participant result.
//
// On failure the error is an [*APIError] (see [ClassOf]), or, when ctx ends
// first, an error wrapping ctx.Err(). The Response of a failure carries the
// status and request ID of the server's answer, if there was one.
func (c *Client) HangUp(ctx context.Context, conferenceID, token string, participantIDs []string) (Response, error) {
	if err := checkConference(OpHangUp, conferenceID); err != nil {
		return Response{}, err
	}
	if err := checkToken(OpHangUp, token); err != nil {
		return Response{}, err
	}
	if len(participantIDs) == 0 {
		return Response{}, errorf(OpHangUp, ClassPermanent, "no participant IDs")
	}
	for i, id := range participantIDs {
		if strings.TrimSpace(id) == "" {
			return Response{}, errorf(OpHangUp, ClassBadParameter, "participant ID %d of %d is empty", i+1, len(participantIDs))
		}
	}
	body, err := json.Marshal(struct {
		IDs []string `json:"bulkHangUpParticipants"`
	}{participantIDs})
	if err != nil {
		return Response{}, errorf(OpHangUp, ClassBadParameter, "encode request: %v", err)
	}

	res, err := c.do(ctx, call{
		op:      OpHangUp,
		method:  http.MethodPost,
		path:    pathHangUp,
		conf:    conferenceID,
		header:  http.Header{headerAuthorization: {token}},
		body:    body,
		secrets: []string{token},
	})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return Response{Status: ae.Status, RequestID: ae.RequestID}, err
		}
		return Response{}, err
	}
	// A 200 has no body; whatever came is ignored.
	return Response{Status: res.status, RequestID: res.requestID}, nil
}

// call describes one HTTP exchange.
type call struct {
	op      string
	method  string
	path    string
	conf    string      // conferenceID query parameter
	header  http.Header // extra headers
	body    []byte      // JSON, nil for none
	secrets []string    // values to keep out of errors
	// needBody says whether the body of a success is used; when it cannot be
	// read completely the call fails.
	needBody bool
}

// result is a successful (2xx) exchange.
type result struct {
	status    int
	requestID string
	body      []byte // at most maxBodyBytes; only read when call.needBody
}

// do makes one HTTP attempt bounded by the per-call timeout. It returns an
// *APIError for every failure, except when the caller's ctx ends first: then
// the error wraps ctx.Err().
func (c *Client) do(ctx context.Context, cl call) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, fmt.Errorf("%s: %w", cl.op, err)
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, ErrCallTimeout)
	defer cancel()

	u := c.baseURL
	u.Path += cl.path
	u.RawQuery = url.Values{"conferenceID": {cl.conf}}.Encode()
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(callCtx, cl.method, u.String(), body)
	if err != nil {
		return result{}, errorf(cl.op, ClassPermanent, "build request: %v", err)
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.injectTraceContext(ctx, req.Header)

	resp, err := c.http.Do(req)
	if err != nil {
		return result{}, c.transportError(ctx, callCtx, cl, err)
	}
	// Read what we need, drain a bounded rest so that the connection can be
	// reused, and close.
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	_, _ = io.CopyN(io.Discard, resp.Body, maxBodyBytes)
	_ = resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if readErr != nil && cl.needBody {
			return result{}, c.transportError(ctx, callCtx, cl, fmt.Errorf("read response: %w", readErr))
		}
		return result{
			status:    resp.StatusCode,
			requestID: cleanString(resp.Header.Get(headerRequestID), maxRequestIDBytes, cl.secrets),
			body:      data,
		}, nil
	}
	if readErr != nil && ctx.Err() != nil {
		return result{}, fmt.Errorf("%s: %w", cl.op, ctx.Err())
	}
	// A body cut short still holds the status; decode what arrived.
	return result{}, decodeError(cl.op, resp.StatusCode, resp.Header, data, cl.secrets)
}

// transportError classifies a failure without an HTTP status.
func (c *Client) transportError(ctx, callCtx context.Context, cl call, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", cl.op, ctx.Err())
	}
	if errors.Is(context.Cause(callCtx), ErrCallTimeout) {
		return &APIError{
			Op:      cl.op,
			Class:   ClassRetryable,
			Message: cleanString(ErrCallTimeout.Error()+" after "+c.timeout.String(), maxMessageBytes, cl.secrets),
			Err:     ErrCallTimeout,
		}
	}
	return &APIError{
		Op:      cl.op,
		Class:   ClassRetryable,
		Message: cleanString(err.Error(), maxMessageBytes, cl.secrets),
		Err:     err,
	}
}

// decodeSuccess decodes the JSON body of a 2xx response into v. A body that
// does not decode is an APIError with the response's status, classified as
// retryable: a gateway in the way, not an answer of the API.
func decodeSuccess(cl call, res result, v any) error {
	if err := json.Unmarshal(res.body, v); err != nil {
		return &APIError{
			Op:        cl.op,
			Status:    res.status,
			Message:   cleanString("decode response: "+err.Error(), maxMessageBytes, cl.secrets),
			RequestID: res.requestID,
			Class:     ClassRetryable,
		}
	}
	return nil
}

// checkConference validates a conference ID before any request is made.
func checkConference(op, conferenceID string) error {
	if strings.TrimSpace(conferenceID) == "" {
		return errorf(op, ClassPermanent, "empty conference ID")
	}
	return nil
}

// checkToken validates a meeting control token before any request is made.
// A missing or unusable token calls for a new one.
func checkToken(op, token string) error {
	if token == "" {
		return errorf(op, ClassAuthExpired, "empty token")
	}
	if !validHeaderValue(token) {
		return errorf(op, ClassAuthExpired, "token holds characters not allowed in a header")
	}
	return nil
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters other than horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
