//go:build unix

package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

// simClient talks to the simulator's admin API under /_sim/.
type simClient struct {
	base string
	http *http.Client
}

// simState is the part of GET /_sim/state the test reads.
type simState struct {
	Mode     string                      `json:"mode"`
	Meetings []meetingsim.MeetingSummary `json:"meetings"`
	Stats    meetingsim.Stats            `json:"stats"`
}

// do sends an admin request with a JSON body (if in is not nil) and decodes
// a JSON answer into out (if not nil). Admin calls are never subject to
// injected faults, so a failure is the simulator's.
func (s *simClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (s *simClient) setFaults(ctx context.Context, f meetingsim.Faults) error {
	return s.do(ctx, http.MethodPut, "/_sim/faults", f, nil)
}

func (s *simClient) setMode(ctx context.Context, mode string) error {
	return s.do(ctx, http.MethodPut, "/_sim/mode", map[string]string{"mode": mode}, nil)
}

// expireTokens expires every token issued so far and returns how many were
// still valid.
func (s *simClient) expireTokens(ctx context.Context) (int, error) {
	var out struct {
		Expired int `json:"expired"`
	}
	err := s.do(ctx, http.MethodPost, "/_sim/tokens/expire", nil, &out)
	return out.Expired, err
}

// tokenConfig is the body of GET and POST /_sim/tokens/config: the
// lifetime of new tokens (a Go duration) and the token mode, "many" or
// "one-live". In a request either may be left out.
type tokenConfig struct {
	Lifetime string `json:"lifetime,omitempty"`
	Mode     string `json:"mode,omitempty"`
}

func (s *simClient) tokenConfig(ctx context.Context) (tokenConfig, error) {
	var c tokenConfig
	err := s.do(ctx, http.MethodGet, "/_sim/tokens/config", nil, &c)
	return c, err
}

// setTokenConfig changes the token settings and returns those in force.
func (s *simClient) setTokenConfig(ctx context.Context, c tokenConfig) (tokenConfig, error) {
	var out tokenConfig
	err := s.do(ctx, http.MethodPost, "/_sim/tokens/config", c, &out)
	return out, err
}

func (s *simClient) addMeeting(ctx context.Context, m meetingsim.Meeting) error {
	return s.do(ctx, http.MethodPost, "/_sim/meetings", m, nil)
}

func (s *simClient) state(ctx context.Context) (simState, error) {
	var st simState
	err := s.do(ctx, http.MethodGet, "/_sim/state", nil, &st)
	return st, err
}

func (s *simClient) disconnects(ctx context.Context) ([]meetingsim.Disconnect, error) {
	var ds []meetingsim.Disconnect
	err := s.do(ctx, http.MethodGet, "/_sim/disconnects", nil, &ds)
	return ds, err
}

// baselineFaults are the faults injected during the chaos phase: 10% of
// hang-ups answer 500, 5% flow control with Retry-After 1s, a little
// latency with rare spikes. The same values are given to the simulator's
// flags at start.
func baselineFaults() meetingsim.Faults {
	return meetingsim.Faults{
		LatencyBase:     2 * time.Millisecond,
		LatencyJitter:   10 * time.Millisecond,
		SpikeRate:       0.02,
		SpikeLatency:    1500 * time.Millisecond,
		Errors:          []meetingsim.ErrorFault{{Rate: 0.10, Status: http.StatusInternalServerError, Code: meetingsim.CodeServiceError}},
		FlowControlRate: 0.05,
		RetryAfter:      time.Second,
	}
}

// simFaultFlags are baselineFaults as flags of cmd/meetingsim.
func simFaultFlags() []string {
	f := baselineFaults()
	return []string{
		"--latency", f.LatencyBase.String(),
		"--jitter", f.LatencyJitter.String(),
		"--spike-rate", fmt.Sprint(f.SpikeRate),
		"--spike-latency", f.SpikeLatency.String(),
		"--error-rate", fmt.Sprint(f.Errors[0].Rate),
		"--flow-control-rate", fmt.Sprint(f.FlowControlRate),
		"--retry-after", f.RetryAfter.String(),
	}
}
